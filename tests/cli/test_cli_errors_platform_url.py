"""A malformed platform URL is refused with a message naming the URL, before any dial."""

from __future__ import annotations

import pytest

from opik_connect.connect.platform_url import LinkError, check_url_policy


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://", "names no host"),
        ("wss://:443", "names no host"),
        ("ws://[::1", "not a valid platform URL 'ws://[::1'"),
        ("ws://127.0.0.1:abc", "not a valid platform URL 'ws://127.0.0.1:abc'"),
    ],
)
@pytest.mark.parametrize("insecure", [False, True])
def test_malformed_platform_url_is_refused(url: str, expected: str, insecure: bool) -> None:
    with pytest.raises(LinkError, match=expected.replace("[", r"\[")):
        check_url_policy(url, insecure=insecure)
