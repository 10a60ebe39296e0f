"""The generator's exact bytes, pinned: a restructuring or an optimisation must not change one record.

Determinism is tested elsewhere (the same run twice, however it is split into blocks); this pins the output
itself, so a change that alters what a seed produces is noticed. The hashes were computed from commit f0e87c4
(before the generator was split into modules). If a change is *meant* to alter the stream (a new field, another
funnel ratio), or an upgrade of numpy changes its random streams, recompute them with this test's settings and
say why in the commit.
"""

from __future__ import annotations

import hashlib

from rtap.generate import ClickstreamGenerator
from rtap.settings import GeneratorSettings

RECORDS_SHA256 = "d691c2f74c2f8e62faa109451434f7469ddc2025547acd15b03a14cbc5a3194a"
TRUTH_SHA256 = "2d6f002be1636972b7c50ba5d477088c8e56e36949117c9c4c74502d8539aace"
SENDS = 20_000
START_MS = 1_795_953_600_000  # 2026-11-29 08:00 UTC


def test_a_fixed_seed_gives_the_pinned_records_and_truth() -> None:
    # Every setting given, so no RTAP_GEN_ variable or .env can change the run; the dirt rates are raised so
    # 20k sends carry hundreds of each kind (malformed of all four kinds, re-sent copies, late events) and bots.
    settings = GeneratorSettings(
        seed=20261129,
        users=2_000,
        pages=200,
        products=500,
        zipf_s=1.1,
        bot_share=0.05,
        duplicate_rate=0.04,
        late_rate=0.03,
        late_by_seconds=90.0,
        malformed_rate=0.04,
        daily_curve=False,
    )
    generator = ClickstreamGenerator(settings, partitions=6, watermark_delay_s=30.0)
    # Four sends per millisecond, 41 ms apart: shared time fragments, second and minute boundaries (200 s).
    times = [START_MS + (send // 4) * 41 for send in range(SENDS)]
    records = hashlib.sha256()
    produced = 0
    for start in range(0, SENDS, 1000):
        block = generator.generate_block(times[start : start + 1000])
        for key, value, partition in zip(*block, strict=True):
            records.update(b"%d:%s%d:%s%d;" % (len(key), key, len(value), value, partition))
            produced += 1
    truth = generator.truth
    assert (produced, truth.produced, truth.accepted, truth.duplicates, truth.late, truth.dead_letters) == (
        20_808,
        20_808,
        18_498,
        781,
        669,
        860,
    )
    assert records.hexdigest() == RECORDS_SHA256
    assert hashlib.sha256(truth.to_json()).hexdigest() == TRUTH_SHA256
