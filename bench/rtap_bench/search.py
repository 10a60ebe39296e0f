"""The sustainable-rate search: step up until a step fails, then bisect; pure, so it is tested on a synthetic judge.

A search that only bisects between its first guesses can end with every step held, below a ceiling it never
saw. This one keeps stepping up geometrically (``growth``) from the highest rate that held until the job
fails a step, then bisects geometrically between the highest rate held and the lowest rate failed until they
are within ``resolution`` of each other. The caller bounds it with a number of steps.

Three outcomes per step. ``held`` and ``failed`` are the job's; ``producer`` means the sender fell behind its
schedule, so the step says nothing about the job: it bounds the search from above (no point offering more)
but is not a failure of the job, and a search that ends on it has not found the job's ceiling.

Noise on a shared machine can make a rate fail below one that held; the bracket uses the highest rate held
and the lowest failure above it, and the report shows every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["held", "failed", "producer"]
HELD: Outcome = "held"
FAILED: Outcome = "failed"
PRODUCER: Outcome = "producer"


@dataclass
class RateSearch:
    """The steps so far and the next rate to try."""

    growth: float = 1.5
    resolution: float = 1.1  # stop when lowest failed / highest held is at most this
    min_rate: float = 10.0  # below this nothing is worth measuring: stop stepping down
    tried: list[tuple[float, Outcome]] = field(default_factory=list)

    def record(self, rate: float, outcome: Outcome) -> None:
        self.tried.append((rate, outcome))

    @property
    def highest_held(self) -> float | None:
        return max((r for r, o in self.tried if o == HELD), default=None)

    def _lowest_above_held(self, outcome: Outcome) -> float | None:
        floor = self.highest_held or 0.0
        return min((r for r, o in self.tried if o == outcome and r > floor), default=None)

    @property
    def lowest_failed(self) -> float | None:
        """The lowest rate above every held one at which the job failed."""
        return self._lowest_above_held(FAILED)

    @property
    def producer_limit(self) -> float | None:
        """The lowest rate above every held one at which the sender could not keep its schedule."""
        return self._lowest_above_held(PRODUCER)

    @property
    def ceiling_found(self) -> bool:
        """A rate held and a higher one failed (by the job), within ``resolution`` or as close as the steps got."""
        return self.highest_held is not None and self.lowest_failed is not None

    def next_rate(self) -> float | None:
        """The next rate to try, or None when the bracket is within ``resolution`` (or cannot narrow further)."""
        if not self.tried:
            raise ValueError("seed the search with at least one step")
        low = self.highest_held
        uppers = [r for r in (self.lowest_failed, self.producer_limit) if r is not None]
        high = min(uppers, default=None)
        if low is None:  # nothing held yet: step down from the lowest rate tried
            rate = min(r for r, _ in self.tried) / self.growth
            return rate if rate >= self.min_rate else None
        if high is None:
            return low * self.growth
        if high / low <= self.resolution:
            return None
        return math.sqrt(low * high)
