"""A path without symlinks is opened in one openat2 call, with the walk's answer for every path,
the walk taking over for symlinks, races and kernels without openat2."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox import direct_open
from opik_connect.connect.sandbox.direct_open import DirectOpener, _plain_names
from opik_connect.connect.sandbox.policy import _FILE_FLAGS, PathPolicy
from opik_connect.protocol import BridgeError, ErrorCode


def openat2_works() -> bool:
    """Whether this kernel (and its seccomp filter) answers openat2 for a missing name."""
    opener = DirectOpener(_FILE_FLAGS)
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        opener.open_beneath(root_fd, "no-such-name-here")
    finally:
        os.close(root_fd)
    return opener.syscall is not None


needs_openat2 = pytest.mark.skipif(
    direct_open._SYSCALL is None or not openat2_works(),
    reason="no openat2 here: the walk opens every path (tested with a failing syscall below)",
)


def make_tree(base: Path) -> Path:
    """Files, directories, symlinks in and out (to files and directories), a FIFO, a socket,
    a sensitive file, a denied directory."""
    root, outside = base / "proj", base / "proj-evil"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "private").mkdir()
    outside.mkdir()
    (root / "src" / "main.py").write_text("inside\n")
    (root / "src" / "deep" / "x.txt").write_text("deep\n")
    (root / "top.txt").write_text("top file\n")
    (root / ".env").write_text("X=1\n")
    (root / "private" / "p.txt").write_text("denied\n")
    (outside / "loot.txt").write_text("outside secret\n")
    os.symlink(outside / "loot.txt", root / "link_file_out")
    os.symlink(outside, root / "link_dir_out")
    os.symlink("src/main.py", root / "link_in")
    os.symlink("src", root / "dir_link_in")
    os.symlink(".env", root / "innocent.txt")
    os.symlink("missing", root / "dangling")
    os.mkfifo(root / "pipe")
    return root


COMPONENTS = [
    "src",
    "deep",
    "main.py",
    "x.txt",
    "top.txt",
    ".env",
    "private",
    "p.txt",
    "link_file_out",
    "link_dir_out",
    "loot.txt",
    "link_in",
    "dir_link_in",
    "innocent.txt",
    "dangling",
    "pipe",
    "sock",
    "missing",
    ".",
    "..",
    "",
]


@pytest.fixture(scope="module")
def fixed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_tree(tmp_path_factory.mktemp("direct"))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
    return root


def opened_or_code(policy: PathPolicy, rel: str) -> tuple[str, int, bytes] | str:
    try:
        opened = policy.open_file(rel)
    except BridgeError as exc:
        return exc.code
    try:
        return opened.real_path, opened.size, os.read(opened.fd, 100)
    finally:
        os.close(opened.fd)


def walk_policy(root: Path) -> PathPolicy:
    policy = PathPolicy(root, deny=["private/**"])
    policy.direct.syscall = None
    return policy


@needs_openat2
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4))
def test_every_path_opens_as_the_walk_opens_it(fixed_root: Path, parts: list[str]) -> None:
    """The same file, size and bytes, or the same error code, with and without openat2."""
    rel = "/".join(parts)
    direct = PathPolicy(fixed_root, deny=["private/**"])
    assert opened_or_code(direct, rel) == opened_or_code(walk_policy(fixed_root), rel)
    assert direct.direct.syscall is not None


def no_walk(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names the walk opens from now on (it opens each component it checked)."""
    walked: list[str] = []
    original = PathPolicy._open_checked

    def spy(name, dir_fd, flags, st, rel):
        walked.append(name)
        return original(name, dir_fd, flags, st, rel)

    monkeypatch.setattr(PathPolicy, "_open_checked", staticmethod(spy))
    return walked


@needs_openat2
def test_a_path_of_plain_names_is_opened_without_the_walk(tmp_path, monkeypatch) -> None:
    root = make_tree(tmp_path)
    walked = no_walk(monkeypatch)
    assert opened_or_code(PathPolicy(root), "src/deep/x.txt") == ("src/deep/x.txt", 5, b"deep\n")
    assert walked == []


@needs_openat2
@pytest.mark.parametrize(
    ("rel", "answer"),
    [
        ("link_in", ("src/main.py", 7, b"inside\n")),
        ("dir_link_in/main.py", ("src/main.py", 7, b"inside\n")),
        ("link_file_out", ErrorCode.PATH_TRAVERSAL),
        ("link_dir_out/loot.txt", ErrorCode.PATH_TRAVERSAL),
    ],
)
def test_a_path_through_a_symlink_is_left_to_the_walk(tmp_path, rel, answer) -> None:
    """The walk's answers: the target's path, or traversal (openat2 would give neither)."""
    root = make_tree(tmp_path)
    policy = PathPolicy(root)
    assert opened_or_code(policy, rel) == answer
    assert policy.direct.syscall is not None


def failing_syscall(err: int):
    calls: list[bytes] = []

    def syscall(_number, _dir_fd, path, _how, _size):
        calls.append(path)
        ctypes.set_errno(err)
        return -1

    return syscall, calls


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG])
def test_without_openat2_the_walk_opens_everything(tmp_path, err: int) -> None:
    """An old kernel (ENOSYS) or a seccomp filter (EPERM): asked once, then never again."""
    root = make_tree(tmp_path)
    policy = PathPolicy(root)
    syscall, calls = failing_syscall(err)
    policy.direct.syscall = syscall
    assert opened_or_code(policy, "top.txt") == ("top.txt", 9, b"top file\n")
    assert opened_or_code(policy, "src/main.py") == ("src/main.py", 7, b"inside\n")
    assert calls == [b"top.txt"]
    assert policy.direct.syscall is None


@pytest.mark.parametrize("err", [errno.EACCES, errno.ELOOP, errno.EXDEV, errno.EAGAIN])
def test_a_refusal_for_one_path_keeps_openat2_for_the_next(tmp_path, err: int) -> None:
    root = make_tree(tmp_path)
    opener = DirectOpener(_FILE_FLAGS, failing_syscall(err)[0])
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert opener.open_beneath(root_fd, "top.txt") is None
    finally:
        os.close(root_fd)
    assert opener.syscall is not None


@needs_openat2
@pytest.mark.parametrize(
    "rel",
    ["../proj-evil/loot.txt", "src/../../proj-evil/loot.txt", "link_in", "dir_link_in/main.py"],
)
def test_the_kernel_refuses_leaving_the_root_and_every_symlink(tmp_path, rel: str) -> None:
    root = make_tree(tmp_path)
    opener = DirectOpener(_FILE_FLAGS)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert opener.open_beneath(root_fd, rel) is None
        assert opener.open_beneath(root_fd, str(root / "top.txt")) is None
        fd = opener.open_beneath(root_fd, "src/main.py")
        assert fd is not None
        os.close(fd)
    finally:
        os.close(root_fd)
    assert opener.syscall is not None


@pytest.mark.parametrize(
    ("rel", "plain"),
    [
        ("a", True),
        ("a/b.py", True),
        (".github/x.yml", True),
        ("a..b/c", True),
        ("", False),
        ("a//b", False),
        ("/a", False),
        ("a/", False),
        ("./a", False),
        ("a/./b", False),
        ("a/..", False),
        ("../a", False),
        ("a\0b", False),
    ],
)
def test_only_paths_of_plain_names_are_tried(rel: str, plain: bool) -> None:
    assert _plain_names(rel) is plain


def swap_before_openat2(monkeypatch: pytest.MonkeyPatch, swap) -> None:
    """Between the lstat and openat2, `swap()` changes the tree (once)."""
    original = DirectOpener.open_beneath
    done: list[bool] = []

    def swap_then_open(self, dir_fd, rel):
        if not done:
            done.append(True)
            swap()
        return original(self, dir_fd, rel)

    monkeypatch.setattr(DirectOpener, "open_beneath", swap_then_open)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@needs_openat2
@pytest.mark.timeout(10)
def test_a_file_swapped_for_a_fifo_before_openat2_is_refused_without_hanging(
    tmp_path, monkeypatch
) -> None:
    root = make_tree(tmp_path)
    target = root / "src" / "main.py"
    swap_before_openat2(monkeypatch, lambda: (target.unlink(), os.mkfifo(target)))
    before = open_fds()
    assert opened_or_code(PathPolicy(root), "src/main.py") == ErrorCode.PERMISSION_DENIED
    assert open_fds() == before


@needs_openat2
def test_a_file_swapped_for_a_symlink_out_before_openat2_is_traversal(tmp_path, monkeypatch):
    root = make_tree(tmp_path)
    target = root / "src" / "main.py"
    outside = tmp_path / "proj-evil" / "loot.txt"
    swap_before_openat2(monkeypatch, lambda: (target.unlink(), os.symlink(outside, target)))
    assert opened_or_code(PathPolicy(root), "src/main.py") == ErrorCode.PATH_TRAVERSAL


@needs_openat2
def test_a_directory_swapped_for_a_symlink_out_before_openat2_is_traversal(tmp_path, monkeypatch):
    root = make_tree(tmp_path)
    outside = tmp_path / "proj-evil"
    (outside / "main.py").write_text("outside secret\n")

    def swap() -> None:
        os.rename(root / "src", root / "src_moved")
        os.symlink(outside, root / "src")

    swap_before_openat2(monkeypatch, swap)
    assert opened_or_code(PathPolicy(root), "src/main.py") == ErrorCode.PATH_TRAVERSAL


@needs_openat2
def test_a_file_replaced_before_openat2_is_opened_again_by_the_walk(tmp_path, monkeypatch):
    """openat2 opens another inode than lstat saw: that descriptor is closed, and the walk
    opens what is there now."""
    root = make_tree(tmp_path)
    swap_before_openat2(monkeypatch, lambda: os.replace(root / "top.txt", root / "src/main.py"))
    walked = no_walk(monkeypatch)
    before = open_fds()
    assert opened_or_code(PathPolicy(root), "src/main.py") == ("src/main.py", 9, b"top file\n")
    assert walked == ["src", "main.py"]
    assert open_fds() == before


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("rel", "code"),
    [
        ("pipe", ErrorCode.PERMISSION_DENIED),
        ("sock", ErrorCode.PERMISSION_DENIED),
        ("src", ErrorCode.FILE_NOT_FOUND),
        ("missing", ErrorCode.FILE_NOT_FOUND),
        ("top.txt/x", ErrorCode.FILE_NOT_FOUND),
    ],
)
def test_what_lstat_does_not_see_as_a_regular_file_is_never_opened(
    fixed_root: Path, monkeypatch, rel: str, code: ErrorCode
) -> None:
    """A FIFO or a device is refused before any open (opening one can act on it)."""
    asked: list[str] = []
    monkeypatch.setattr(DirectOpener, "open_beneath", lambda _self, _fd, rel: asked.append(rel))
    assert opened_or_code(PathPolicy(fixed_root), rel) == code
    assert asked == []
