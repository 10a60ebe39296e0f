"""The pipeline's vocabulary: the words the generator's truth, the stream job and the warehouse's SQL share.

Every record ends with exactly one status; the warehouse's SQL (migrations) spells the event types below as
literals, and tests/unit/contract/test_vocabulary.py checks that it spells them as they are here.
"""

from __future__ import annotations

# A record's outcome: dead_letters, late_events, a counted duplicate, or events.
DEAD_LETTER = "dead_letter"
LATE = "late"
DUPLICATE = "duplicate"
ACCEPTED = "accepted"
STATUSES = (DEAD_LETTER, LATE, DUPLICATE, ACCEPTED)

# What counts as a view of a page (page_views_1m, the previous system's clicks per page).
PAGE_VIEW_TYPES = ("page_view", "product_view")
# The event that carries an order and its revenue.
PURCHASE = "purchase"
