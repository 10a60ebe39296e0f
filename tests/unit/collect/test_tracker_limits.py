"""tracker.js caps its batchSize at the collector's default limit of events per request (it does not ask a
collector for its settings), so the two numbers must move together."""

from __future__ import annotations

import re

from rtap.settings import CollectorSettings
from tests.support.paths import REPO_ROOT

TRACKER = REPO_ROOT / "src" / "rtap" / "collect" / "static" / "tracker.js"


def test_the_trackers_batch_cap_is_the_collectors_default_max_batch_events() -> None:
    found = re.search(r"const MAX_BATCH = (\d+);", TRACKER.read_text(encoding="utf-8"))
    assert found, "tracker.js must state its batch cap as `const MAX_BATCH = <n>;`"
    assert int(found.group(1)) == CollectorSettings.model_fields["max_batch_events"].default
