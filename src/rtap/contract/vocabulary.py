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

# How far behind its partition's watermark a record may be and still be judged a copy of an accepted event. The
# lookup of stored copies reads every minute it is given (and those on either side) whole, so records spread over
# many old minutes would make one batch read each of them: a sender replaying, or inventing, old event times could
# make every batch read the table. Five minutes takes a producer's resends after a timeout or a short outage and
# keeps the lookup within a few minutes of the newest events; a record further behind is late, whatever it copies.
COPY_LOOKBACK_MS = 5 * 60_000

# What counts as a view of a page (page_views_1m, the previous system's clicks per page).
PAGE_VIEW_TYPES = ("page_view", "product_view")
# The event that carries an order and its revenue.
PURCHASE = "purchase"
