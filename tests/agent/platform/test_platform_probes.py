"""/healthz and /readyz on an in-process platform: what they say, and what they never say."""

from __future__ import annotations

import httpx

from opik_connect.agent.platform.server import Platform


async def get(platform: Platform, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(platform.url.replace("ws://", "http://") + path, headers=headers)


async def test_readyz_says_unavailable_when_a_check_fails_and_keeps_the_reason_to_itself(caplog):
    async def store_down() -> None:
        raise ConnectionError("password authentication failed for user opik at 10.0.0.5")

    async with Platform() as platform:
        platform.ops.ready_checks.append(store_down)
        ready = await get(platform, "/readyz")
        health = await get(platform, "/healthz")
    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
    assert "10.0.0.5" not in ready.text and "password" not in ready.text
    assert "10.0.0.5" in caplog.text, "the reason goes to the operator's log"
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_ready_until_draining_and_no_metrics_without_a_renderer():
    async with Platform() as platform:
        assert (await get(platform, "/readyz")).json() == {"status": "ready"}
        assert (await get(platform, "/metrics")).status_code == 401
        metrics = await get(platform, "/metrics", platform.operator_token)
        assert metrics.status_code == 404, "the embedded platform keeps none"
        drained = await platform.drain(10)
    assert drained is True, "nothing was in flight"
    assert platform.draining
