"""What the daemon keeps after a search: no compiled pattern outlives its search, the secret
index holds each file's redacted lines as one text (as the scan would redact them), and a
pass over a whole tree leaves the redaction cache and the hints' states as they were."""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox import search_scan, search_secrets, secret_redaction
from opik_connect.connect.sandbox.linear_regex import compile_line_search, compile_linear
from opik_connect.connect.sandbox.malloc_tuning import (
    fix_malloc_thresholds,
    release_freed_memory,
)
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.redaction_cache import apply_splices, content_key
from opik_connect.connect.sandbox.search_scan import (
    REDACTIONS,
    read_for_search,
    redaction_splices,
    scan_files,
    secret_rule_lines,
)
from opik_connect.connect.sandbox.search_secrets import _look_at
from opik_connect.connect.sandbox.shadow_tree import ShadowTree

LINES = [
    "import os",
    'AWS = "AKIAB234567890ABCDEF"',
    'api_key = "sk-ant-' + "a" * 30 + '"',
    "url = 'https://user:hunter22@example.com/x'",
    "token_count = 3",
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEA1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS",
    "-----END RSA PRIVATE KEY-----",
    'password: "correct horse battery"',
    "",
]


def test_a_compiled_pattern_is_not_kept_after_its_search() -> None:
    cached = re2._Regexp._make.cache_info().currsize
    first = compile_line_search("TimeoutError")
    assert compile_line_search("TimeoutError") is not first
    compile_linear("a.*b", as_bytes=True)
    assert re2._Regexp._make.cache_info().currsize == cached


def test_the_hints_compiled_afresh_answer_the_same() -> None:
    texts = [line.encode() for line in LINES] + [b"nothing here", b"x://y"]
    before = [secret_redaction.might_contain_secret(t) for t in texts]
    old = secret_redaction._HINT_BYTES
    secret_redaction.forget_hint_states()
    assert secret_redaction._HINT_BYTES is not old
    assert [secret_redaction.might_contain_secret(t) for t in texts] == before
    assert secret_redaction.redact("\n".join(LINES)) == secret_redaction.redact("\n".join(LINES))


def test_malloc_settings_apply_on_glibc_and_never_raise() -> None:
    fix_malloc_thresholds()
    release_freed_memory()


def test_a_scan_gives_back_what_it_freed_once_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc would keep the freed blocks inside the worker thread's arena: each search
    returns them once its result is ready."""
    released: list[int] = []
    monkeypatch.setattr(search_scan, "release_freed_memory", lambda: released.append(1))
    (tmp_path / "a.py").write_text("\n".join(LINES))
    args = (PathPolicy(tmp_path, []), ["a.py"], compile_line_search("os"), frozenset({"a.py"}))
    result = scan_files(*args, threading.Event())
    assert result.total_matches == 1 and released == [1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from(LINES), max_size=8), min_size=1, max_size=6))
def test_the_index_shadows_exactly_the_files_redaction_changes_and_caches_nothing(
    files: list[list[str]],
) -> None:
    """Each file redaction changes gets a copy holding its text as a search reads it
    (redacted), the others none, and the pass leaves the searches' redaction cache alone."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        shadows = ShadowTree(Path(tmp) / "shadow")
        paths = []
        for i, lines in enumerate(files):
            path = f"f{i}.py"
            (root / path).write_text("\n".join(lines) + "\n")
            paths.append(path)
        policy = PathPolicy(root, [])
        visible = frozenset(paths)
        cached = len(REDACTIONS._entries)
        held, clean, _ = _look_at(
            policy, paths, visible, threading.Event(), ({}, {}, {}), shadows, []
        )
        assert len(REDACTIONS._entries) == cached
        rules, stop = secret_rule_lines(), threading.Event()
        for path in paths:
            raw = read_for_search(policy, path, visible)
            assert raw is not None
            splices = redaction_splices(raw, rules, stop, math.inf, remember=False)
            copy = shadows.root / path
            assert (path in held) == bool(splices) == copy.exists() == (path not in clean)
            if not splices:
                continue
            assert held[path] == content_key(raw)
            assert copy.read_bytes() == apply_splices(raw, splices)
            if "PRIVATE KEY" not in raw.decode():
                assert copy.read_text() == secret_redaction.redact(raw.decode())[0]


def test_a_rebuild_rewrites_only_the_copies_whose_content_changed(
    tmp_path: Path, monkeypatch
) -> None:
    """Unwatched, the index is rebuilt every few seconds: a file read with the content it had
    is not redacted (nor its copy written) again, with or without a secret; a changed one is;
    one whose secret went loses its copy."""
    (tmp_path / "a.py").write_text('AWS = "AKIAB234567890ABCDEF"\n')
    (tmp_path / "b.py").write_text('AWS = "AKIAB234567890ABCDEF"\n')
    (tmp_path / "c.py").write_text("print('hello')\n")
    shadows = ShadowTree(tmp_path / "shadow")
    paths = ["a.py", "b.py", "c.py"]
    policy, visible = PathPolicy(tmp_path, []), frozenset(paths)
    known = _look_at(policy, paths, visible, threading.Event(), ({}, {}, {}), shadows, [])
    assert (sorted(known[0]), sorted(known[1])) == (["a.py", "b.py"], ["c.py"])
    assert known[2] == {}, "a file changed just now is read again at the next look"
    (shadows.root / "a.py").write_text("kept")
    (tmp_path / "b.py").write_text("no secret here\n")
    redacted: list[bytes] = []
    splices = search_secrets.redaction_splices

    def counting(raw, *args, **kwargs):
        redacted.append(raw)
        return splices(raw, *args, **kwargs)

    monkeypatch.setattr(search_secrets, "redaction_splices", counting)
    held, clean, _ = _look_at(policy, paths, visible, threading.Event(), known, shadows, [])
    assert (held, sorted(clean)) == ({"a.py": known[0]["a.py"]}, ["b.py", "c.py"])
    assert redacted == [b"no secret here\n"]
    assert (shadows.root / "a.py").read_text() == "kept"
    assert not (shadows.root / "b.py").exists()


def test_a_rebuild_does_not_read_a_settled_file_whose_signature_is_unchanged(
    tmp_path: Path, monkeypatch
) -> None:
    """A file's signature (inode, size, times), taken when it had settled, stands for the
    content read then: a rebuild reads only the files that changed since."""
    monkeypatch.setattr(search_secrets, "SETTLED_NS", -(10**12))  # every file counts as settled
    (tmp_path / "a.py").write_text('AWS = "AKIAB234567890ABCDEF"\n')
    (tmp_path / "c.py").write_text("print('hello')\n")
    shadows = ShadowTree(tmp_path / "shadow")
    paths = ["a.py", "c.py"]
    policy, visible = PathPolicy(tmp_path, []), frozenset(paths)
    known = _look_at(policy, paths, visible, threading.Event(), ({}, {}, {}), shadows, [])
    assert sorted(known[2]) == paths
    (tmp_path / "c.py").write_text("print('hello, again')\n")
    read: list[str] = []
    reading = search_secrets.read_for_search

    def recording(policy, path, visible):
        read.append(path)
        return reading(policy, path, visible)

    monkeypatch.setattr(search_secrets, "read_for_search", recording)
    held, clean, signed = _look_at(policy, paths, visible, threading.Event(), known, shadows, [])
    assert read == ["c.py"]
    assert (held, sorted(clean)) == ({"a.py": known[0]["a.py"]}, ["c.py"])
    assert signed["a.py"] == known[2]["a.py"] and signed["c.py"] != known[2]["c.py"]
