"""Runner sink keys: signed with the runner's link key, bound to it, expiring; and the sink URL a
daemon derives from a remote platform's grant, renewed by the daemon near expiry."""

from __future__ import annotations

from opik_connect.agent.traces.sink_keys import SinkAuth, check_sink_key
from opik_connect.connect.suites.platform_sink import granted_sink
from opik_connect.link.sink_key import KEY_RENEW_S, KEY_TTL_S, fresh_grant, issue_sink_key
from opik_connect.protocol import TraceSinkGrant

LINK_KEYS = {"runner-a": b"a" * 32, "runner-b": b"b" * 32}


async def link_key_of(runner_id: str) -> bytes | None:
    return LINK_KEYS.get(runner_id)


async def test_a_key_names_its_runner_until_it_expires() -> None:
    key = issue_sink_key("runner-a", LINK_KEYS["runner-a"], 1000)
    assert (await check_sink_key(key, link_key_of, 999)).runner_id == "runner-a"
    assert "expired" in ((await check_sink_key(key, link_key_of, 1000)).problem or "")
    prefix, expires, mac, runner = key.split(".", 3)
    for changed in (
        f"{prefix}.{expires}.{mac}.runner-b",  # another runner's name on it
        f"{prefix}.9999.{mac}.{runner}",  # a later expiry
        f"{prefix}.{expires}.{mac[:-2]}AA.{runner}",
        f"{prefix}.{expires}.{mac}.runner-gone",
    ):
        assert (await check_sink_key(changed, link_key_of, 0)).runner_id is None, changed


async def test_the_operator_token_and_runner_keys_are_told_apart() -> None:
    auth = SinkAuth("operator-token", link_key_of, clock=lambda: 0)
    key = issue_sink_key("runner-b", LINK_KEYS["runner-b"], 10)
    assert (await auth.caller({"authorization": "operator-token"})).operator
    assert (await auth.caller({"authorization": f"Bearer {key}"})).runner_id == "runner-b"
    nobody = await auth.caller({"authorization": "guess"})
    assert not nobody.operator and nobody.runner_id is None
    assert (await SinkAuth("t", None).caller({"authorization": key})).runner_id is None


def test_a_grant_points_at_the_platform_host_the_daemon_dialed() -> None:
    grant = TraceSinkGrant(port=9100, tls=True, key="k", expires_at=100)
    sink = granted_sink("wss://platform.example:8765", grant)
    assert sink is not None and (sink.url, sink.token) == ("https://platform.example:9100/api", "k")
    v6 = granted_sink("ws://[::1]:8765", grant.model_copy(update={"tls": False}))
    assert v6 is not None and v6.url == "http://[::1]:9100/api"
    assert granted_sink("wss://platform.example:8765", None) is None
    assert sink.verify_tls
    lax = granted_sink("wss://platform.example:8765", grant, verify_tls=False)
    assert lax is not None and not lax.verify_tls, "checked as the link's certificate was"
    behind_a_tls_proxy = grant.model_copy(update={"tls": False})
    sink = granted_sink("wss://platform.example", behind_a_tls_proxy)
    assert sink is not None and sink.url == "https://platform.example:9100/api"


async def test_a_daemon_renews_its_key_near_expiry_and_no_key_outlives_a_day() -> None:
    link_key = LINK_KEYS["runner-a"]
    grant = TraceSinkGrant(
        port=9100, key=issue_sink_key("runner-a", link_key, KEY_TTL_S), expires_at=KEY_TTL_S
    )
    assert fresh_grant(grant, "runner-a", link_key, KEY_TTL_S - KEY_RENEW_S - 1) is grant
    now = KEY_TTL_S - 10
    renewed = fresh_grant(grant, "runner-a", link_key, now)
    assert (renewed.port, renewed.expires_at) == (9100, now + KEY_TTL_S)
    assert (await check_sink_key(renewed.key, link_key_of, now)).runner_id == "runner-a"
    assert (await check_sink_key(grant.key, link_key_of, KEY_TTL_S)).runner_id is None
    too_long = issue_sink_key("runner-a", link_key, now + 2 * KEY_TTL_S)
    refused = await check_sink_key(too_long, link_key_of, now)
    assert "longer than a day" in (refused.problem or "")
