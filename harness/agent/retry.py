"""When to ask an endpoint again, and how long to wait first.

Model servers shed load with 429 and fail over with 5xx; a hosted API says how long to wait in
``Retry-After``. Waiting as told (within a cap) and backing off otherwise keeps a benchmark run from
hammering a busy server, while a hard limit on tries keeps a dead endpoint from stalling the run.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass

# 408 request timeout, 409 conflict (a lock on the server's side), 429 too many requests, 5xx server faults.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def retryable_status(status: int) -> bool:
    """Whether an HTTP status is a transient fault worth another try."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` more tries; waits as ``Retry-After`` says (capped), else exponential backoff."""

    max_retries: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    retry_after_cap_s: float = 120.0

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s)
        backoff = min(self.max_delay_s, self.base_delay_s * (2**retry))
        return backoff * random.uniform(0.5, 1.0)  # jitter: concurrent conversations do not retry in step
