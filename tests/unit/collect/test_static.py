"""The files the collector serves to browsers: tracker.js stays small and readable, docs/tracker.md states its
size as it is, and every demo shop page loads the tracker with the collector's demo key."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from rtap.settings import DEMO_WRITE_KEY, CollectorSettings
from tests.support.paths import REPO_ROOT

STATIC = REPO_ROOT / "src" / "rtap" / "collect" / "static"
TRACKER = STATIC / "tracker.js"
LIMIT_BYTES = 5_000  # the aim: under 5 KB gzipped (in thousands: the stricter reading)


def gzipped_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def test_the_tracker_is_under_5_kb_gzipped_and_the_docs_say_how_much() -> None:
    size = gzipped_size(TRACKER)
    assert size < LIMIT_BYTES, f"tracker.js is {size} bytes gzipped, over {LIMIT_BYTES}"
    stated = re.search(r"tracker\.js is ([\d,]+) bytes gzipped", (REPO_ROOT / "docs" / "tracker.md").read_text())
    assert stated, "docs/tracker.md must state the tracker's gzipped size ('tracker.js is N,NNN bytes gzipped')"
    assert stated.group(1) == f"{size:,}", f"docs/tracker.md: tracker.js is now {size:,} bytes gzipped"


def test_the_tracker_is_source_not_a_minified_or_bundled_file() -> None:
    text = TRACKER.read_text(encoding="utf-8")
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "sourceMappingURL" not in text
    assert not re.search(r"\b(require|import)\s*\(", text), "no modules: one plain script"


def test_every_shop_page_loads_the_tracker_first_with_the_demo_key() -> None:
    pages = sorted((STATIC / "shop").glob("*.html"))
    assert [p.name for p in pages] == ["cart.html", "checkout.html", "index.html", "product.html"]
    for page in pages:
        scripts = re.findall(r"<script ([^>]*)>", page.read_text(encoding="utf-8"))
        assert scripts[0] == f'src="/tracker.js" data-write-key="{DEMO_WRITE_KEY}"', page.name
        assert 'src="shop.js" defer' in scripts[1:], page.name


def test_the_trackers_batch_cap_is_the_collectors_default_max_batch_events() -> None:
    """tracker.js caps batchSize at the collector's default limit of events per request (it does not ask a
    collector for its settings), so the two numbers move together."""
    found = re.search(r"const MAX_BATCH = (\d+);", TRACKER.read_text(encoding="utf-8"))
    assert found, "tracker.js must state its batch cap as `const MAX_BATCH = <n>;`"
    assert int(found.group(1)) == CollectorSettings.model_fields["max_batch_events"].default
