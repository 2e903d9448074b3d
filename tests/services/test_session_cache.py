"""The session cache: a verified token is trusted for a few seconds, never longer than its
session, and an invalidation always wins over a lookup that was already under way."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from camvault.services.auth import Role, SessionCache, User

ANN = User(1, "ann", Role.USER)
LATER = datetime.now(UTC) + timedelta(hours=1)


def test_a_cached_token_is_trusted_until_its_time_is_up() -> None:
    cache = SessionCache(ttl=0.05)
    cache.put("k", ANN, LATER, cache.generation)
    assert cache.get("k") == ANN
    time.sleep(0.06)
    assert cache.get("k") is None


def test_an_expired_session_is_never_served_from_the_cache() -> None:
    cache = SessionCache(ttl=60)
    cache.put("k", ANN, datetime.now(UTC) - timedelta(seconds=1), cache.generation)
    assert cache.get("k") is None


def test_a_lookup_that_started_before_an_invalidation_is_not_cached() -> None:
    cache = SessionCache(ttl=60)
    started = cache.generation  # a thread reads the session row...
    cache.discard("k")  # ...while the session is ended (logout)
    cache.put("k", ANN, LATER, started)  # the stale answer arrives
    assert cache.get("k") is None


def test_clear_drops_everything_and_the_cache_stays_bounded() -> None:
    cache = SessionCache(ttl=60, max_entries=3)
    for i in range(3):
        cache.put(f"k{i}", ANN, LATER, cache.generation)
    cache.put("k3", ANN, LATER, cache.generation)
    assert len(cache._entries) <= 3
    assert cache.get("k3") == ANN
    cache.clear()
    assert cache.get("k3") is None
