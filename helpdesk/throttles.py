"""Quotas held in the cache (Redis in production), so every web process counts together.

A quota is a fixed window per subject: ``count/period`` (period ``s``, ``m``, ``h`` or ``d``,
optionally with a multiplier such as ``10/5m``). One atomic increment per request decides, so
two processes can never both take the last slot; DRF's own throttles read, append and write a
list, which races across processes (encode/django-rest-framework#5181). The price of a fixed
window is that a burst at its edge may see up to twice the count within one period: fine for a
quota, which is what this is, not a security wall.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:
    from rest_framework.request import Request

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$")

# The clock, here so tests can move time forward instead of sleeping.
clock = time.time


@dataclass(frozen=True)
class Quota:
    count: int
    period_seconds: int

    @classmethod
    def parse(cls, rate: str) -> Quota:
        """``"600/m"`` -> 600 per 60 s; a malformed rate is a configuration error."""
        match = _RATE.match(rate)
        if match is None:
            raise ValueError(f"Not a rate (like '120/m' or '10/5m'): {rate!r}")
        count, multiplier, unit = match.groups()
        return cls(int(count), int(multiplier or 1) * _PERIODS[unit])


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int  # 0 when allowed


def cache_key(scope: str, subject: str, window: int) -> str:
    return f"ratelimit:{scope}:{subject}:{window}"


def exhausted(*, scope: str, subject: str, rate: str) -> Decision:
    """Whether ``subject`` has used up its quota in this window, without counting a request
    (allowed when the cache is unreachable, as ``take``)."""
    quota, key, now = _window(scope, subject, rate)
    try:
        used = cache.get(key) or 0
    except (RedisError, OSError):
        return Decision(allowed=True, retry_after_seconds=0)
    return _decided(quota, now, used + 1)


def _window(scope: str, subject: str, rate: str) -> tuple[Quota, str, float]:
    """The quota, the cache key of this window's count, and now."""
    quota = Quota.parse(rate)
    now = clock()
    return quota, cache_key(scope, subject, int(now // quota.period_seconds)), now


def _decided(quota: Quota, now: float, used: int) -> Decision:
    """Allowed while ``used`` is within the quota; else refused until the window ends."""
    if used <= quota.count:
        return Decision(allowed=True, retry_after_seconds=0)
    window = int(now // quota.period_seconds)
    retry_after = max(1, math.ceil((window + 1) * quota.period_seconds - now))
    return Decision(allowed=False, retry_after_seconds=retry_after)


def take(*, scope: str, subject: str, rate: str) -> Decision:
    """Count one request of ``subject`` against its quota; refused past it, with the wait.

    When the cache is unreachable the request is allowed: a Redis outage must not stop mail
    from being stored (the inbound endpoint promises 202 then) or the API from answering.
    """
    quota, key, now = _window(scope, subject, rate)
    try:
        # The key outlives its window by a little, so a slow clock never resets it early.
        cache.add(key, 0, timeout=quota.period_seconds + 5)
        used = cache.incr(key)
    except (RedisError, OSError, ValueError):
        # ValueError: the key expired between add and incr; count this request as free.
        logger.warning("rate limit %s for %s not checked: cache unavailable", scope, subject)
        return Decision(allowed=True, retry_after_seconds=0)
    return _decided(quota, now, used)


class ApiKeyThrottle(BaseThrottle):
    """``HELPDESK_API_RATE`` requests per API key; signed-in sessions are not counted here."""

    def allow_request(self, request: Request, view: Any) -> bool:
        from helpdesk.models import ApiKey

        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        self.decision = take(scope="api", subject=str(key.pk), rate=settings.HELPDESK_API_RATE)
        return self.decision.allowed

    def wait(self) -> float | None:
        return self.decision.retry_after_seconds


class ApiClientAddressThrottle(BaseThrottle):
    """``HELPDESK_API_ADDRESS_RATE`` requests per client address, keys and sessions alike.

    The address is the connection's, unless DRF's ``NUM_PROXIES`` says how many proxies of
    ours add themselves to X-Forwarded-For (a client could write anything there otherwise).
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        self.decision = take(
            scope="api-address",
            subject=client_address(request),
            rate=settings.HELPDESK_API_ADDRESS_RATE,
        )
        return self.decision.allowed

    def wait(self) -> float | None:
        return self.decision.retry_after_seconds


def client_address(request: Request) -> str:
    """The client's address: the connection's, unless DRF's ``NUM_PROXIES`` says how many
    proxies of ours add themselves to X-Forwarded-For."""
    from rest_framework.settings import api_settings

    if api_settings.NUM_PROXIES is not None:
        return BaseThrottle().get_ident(request) or "unknown"
    return request.META.get("REMOTE_ADDR", "") or "unknown"
