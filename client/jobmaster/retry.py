"""Backoff arithmetic for the client, without I/O.

Two kinds of waiting:

- *retrying* a request that failed on the way (connection error, 503, 429):
  exponential backoff with full jitter, except that a server's
  ``Retry-After`` is honoured (never retry sooner than it asked);
- *idling* on a ``wait`` lease answer: the server's ``retry_after`` with a
  little jitter so a thousand pods that were told "wait 2s" at the same
  moment do not come back at the same moment.
"""
import email.utils
import random
import time


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` header value, or None.

    Accepts delta-seconds (``"2"``, ``"1.5"``) and HTTP dates. Negative and
    unparseable values give None; a date in the past gives 0.
    """
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        now = time.time() if now is None else now
        return max(0.0, when.timestamp() - now)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


class Backoff:
    """Exponential backoff with full jitter, capped.

    ``compute(failures)`` is the delay before retry number ``failures``
    (1-based): uniform in ``[0, min(cap, base * 2**(failures-1))]``, but at
    least ``floor`` so a tight loop is impossible.
    """

    def __init__(self, base=0.25, cap=15.0, floor=0.05, rng=None):
        self.base = base
        self.cap = cap
        self.floor = floor
        self.rng = rng or random.Random()

    def compute(self, failures, retry_after=None):
        """Delay in seconds before the next try.

        A server-given ``retry_after`` is a lower bound: we wait at least that
        long, plus up to 20% jitter (the cap does not shorten it).
        """
        failures = max(1, int(failures))
        ceiling = min(self.cap, self.base * (2 ** min(failures - 1, 30)))
        delay = max(self.floor, self.rng.uniform(0, ceiling))
        if retry_after is not None:
            delay = retry_after * self.rng.uniform(1.0, 1.2) if retry_after > 0 else delay
        return delay


def idle_delay(retry_after, rng=None, default=2.0, cap=60.0):
    """How long to sleep after a ``wait`` lease answer.

    The server's ``retry_after`` (``default`` if missing) times a jitter
    factor in [0.8, 1.3], capped at ``cap`` seconds and never below 0.05.
    """
    rng = rng or random
    try:
        base = float(retry_after)
    except (TypeError, ValueError):
        base = default
    if base != base or base < 0:
        base = default
    return max(0.05, min(cap, base * rng.uniform(0.8, 1.3)))
