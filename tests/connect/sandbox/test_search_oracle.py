"""No secret oracle: two repos that differ only in a secret's value (same shape, same length)
give identical answers to any read command, whatever pattern a hostile platform sends."""

from __future__ import annotations

import asyncio
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_repo import make_repo

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.protocol import (
    BridgeError,
    ListFilesArgs,
    ReadFileArgs,
    SearchFilesArgs,
)

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


def _secret_file(aws: str, password: str, ant: str, pem: list[str]) -> str:
    """settings.py with four kinds of secret; the PEM's last line is short."""
    return (
        "import os\n"
        f'AWS_ACCESS_KEY_ID = "AKIA{aws}"\n'
        f'password = "{password}"\n'
        f"client = make(api_key='sk-ant-api03-{ant}')\n"
        'KEY = """-----BEGIN RSA PRIVATE KEY-----\n'
        + "".join(f"{line}\n" for line in pem)
        + '-----END RSA PRIVATE KEY-----"""\n'
        "DEBUG = True\n"
    )


def _text(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size)


SECRET_PAIRS = st.tuples(
    st.tuples(_text(UPPER_DIGITS, 16), _text(UPPER_DIGITS, 16)),
    st.tuples(_text(ALNUM, 10), _text(ALNUM, 10)),
    st.tuples(_text(ALNUM, 30), _text(ALNUM, 30)),
    st.tuples(_text(B64, 64), _text(B64, 64)),
    st.tuples(_text(B64, 7), _text(B64, 7)),
)

CLASS = st.builds(
    lambda chars, negate: "[" + ("^" if negate else "") + "".join(sorted(set(chars))) + "]",
    st.text(ALNUM, min_size=1, max_size=6),
    st.booleans(),
)
PROBE = st.one_of(
    st.builds(lambda c: f"AKIA{c}", CLASS),
    st.builds(lambda c: f"AKIA[A-Z0-9]{{3}}{c}", CLASS),
    st.builds(lambda c: f'password = "{c}', CLASS),
    st.builds(lambda c: f"sk-ant-api03-{c}", CLASS),
    st.builds(lambda c: f"^{c}", CLASS),
    st.builds(lambda c: f"{c}$", CLASS),
    st.builds(lambda c: f"^{c}.{{63}}$", CLASS),
    st.builds(lambda c: f"(?i){c}{c}", CLASS),
    st.sampled_from(
        [
            "REDACTED",
            "private_key",
            "secret_value",
            "AKIA(?=[A-H])",
            "(?<=AKIA)[0-9]",
            r"\bAKIA\w{16}\b",
            "^.{7}$",
            "^.{64}$",
            "^[A-Za-z0-9+/]+={0,2}$",
            "KEY",
            "^(?:.+)+QQQ$",
        ]
    ),
)
PATTERN = st.lists(PROBE, min_size=1, max_size=3).map("|".join)


@pytest.fixture(scope="module")
def twin_repos(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("twins")
    return make_repo(base / "a"), make_repo(base / "b")


async def _answer(sandbox: Sandbox, command: str, args) -> object:
    handler = getattr(sandbox, command)
    try:
        return (await handler(args)).model_dump()
    except BridgeError as exc:
        return ("error", exc.code, str(exc), exc.details)


async def _answers(roots: tuple[Path, Path], pattern: str) -> list[tuple[object, object]]:
    sandboxes = [await Sandbox.open(root, ProjectConfig()) for root in roots]
    commands = [
        ("search_files", SearchFilesArgs(pattern=pattern)),
        ("search_files", SearchFilesArgs(pattern=pattern, glob="settings.py")),
        ("read_file", ReadFileArgs(path="settings.py")),
        ("read_file", ReadFileArgs(path="settings.py", offset=6, limit=2)),
        ("list_files", ListFilesArgs(pattern="**/*.py")),
    ]
    out = []
    for command, args in commands:
        out.append(tuple([await _answer(s, command, args) for s in sandboxes]))
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pairs=SECRET_PAIRS, pattern=PATTERN)
def test_answers_depend_on_the_redacted_view_only(twin_repos, pairs, pattern: str) -> None:
    (aws_a, aws_b), (pw_a, pw_b), (ant_a, ant_b), (pem_a, pem_b), (tail_a, tail_b) = pairs
    first, second = twin_repos
    (first / "settings.py").write_text(_secret_file(aws_a, pw_a, ant_a, [pem_a, tail_a]))
    (second / "settings.py").write_text(_secret_file(aws_b, pw_b, ant_b, [pem_b, tail_b]))
    answers = asyncio.run(_answers(twin_repos, pattern))
    for left, right in answers:
        assert left == right
    read = str(answers[2][0])
    for value in (aws_a, pw_a, ant_a, pem_a, tail_a):
        assert value not in read


async def test_the_bisection_probe_of_the_issue_answers_the_same_either_way(tmp_path) -> None:
    """`AKIA[0-9A-H]|REDACTED` used to answer 1 or 0 by the key's next character."""
    answers = []
    for name, key in (("in", "AKIAB234567890ABCDEF"), ("out", "AKIAZ234567890ABCDEF")):
        root = make_repo(tmp_path / name)
        (root / "settings.py").write_text(f'AWS = "{key}"\n')
        sandbox = await Sandbox.open(root, ProjectConfig())
        args = SearchFilesArgs(pattern="AKIA[0-9A-H]|REDACTED", glob="settings.py")
        answers.append((await sandbox.search_files(args)).model_dump())
    assert answers[0] == answers[1]
    assert answers[0]["total_matches"] == 1
    assert answers[0]["matches"][0]["content"] == 'AWS = "[REDACTED:aws_access_key]"'
