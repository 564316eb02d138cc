"""The search's redaction cache: keyed by content (never stale), bounded in bytes."""

from __future__ import annotations

import threading

from opik_connect.connect.sandbox.redaction_cache import RedactionCache, content_key, entry_bytes
from opik_connect.connect.sandbox.search_scan import REDACTIONS, _redacted, secret_rule_lines

KEY = 'api_key = "sk-ant-' + "a" * 30 + '"\n'


def test_same_shape_other_value_is_redacted_afresh() -> None:
    first = ("x = 1\n" + KEY).encode()
    second = first.replace(b"a" * 30, b"b" * 30)
    rules, stop = secret_rule_lines(), threading.Event()
    assert _redacted(first, rules, stop, float("inf")) == _redacted(second, rules, stop, 1e99)
    assert b"sk-ant-" not in _redacted(second, rules, stop, float("inf"))
    assert REDACTIONS.get(content_key(first)) is not None
    assert REDACTIONS.get(content_key(second)) is not None


def test_cache_drops_least_recently_used_past_its_budget() -> None:
    cache = RedactionCache(max_bytes=entry_bytes(((0, 1, b"a" * 100),)) * 5 // 2)
    for name in (b"a", b"b", b"c"):
        cache.put(content_key(name), ((0, 1, name * 100),))
    assert cache.get(content_key(b"a")) is None
    assert cache.get(content_key(b"c")) == ((0, 1, b"c" * 100),)
    cache.put(content_key(b"huge"), ((0, 1, b"x" * 1000),))
    assert cache.get(content_key(b"huge")) is None
