"""Path policy: traversal spellings, symlinks, races, special files, sensitive names."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox.direct_open import DirectOpener
from opik_connect.connect.sandbox.path_globs import compile_glob
from opik_connect.connect.sandbox.policy import PathPolicy, normalize_relative
from opik_connect.protocol import BridgeError, ErrorCode


def code_of(fn, *args) -> ErrorCode:
    with pytest.raises(BridgeError) as info:
        fn(*args)
    return info.value.code


def make_tree(base: Path) -> tuple[Path, Path]:
    """base/proj with files and links, and base/proj-evil: outside, yet named like the root."""
    root = base / "proj"
    outside = base / "proj-evil"
    (root / "src").mkdir(parents=True)
    outside.mkdir()
    (root / "src" / "main.py").write_text("inside\n")
    (outside / "loot.txt").write_text("outside secret\n")
    os.symlink(outside / "loot.txt", root / "link_file_out")
    os.symlink(outside, root / "link_dir_out")
    os.symlink("../proj-evil/loot.txt", root / "rel_link_out")
    os.symlink("src/main.py", root / "link_in")
    os.symlink(root / "src", root / "abs_dir_in")
    return root, outside


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """make_tree's root and outside dir, plus a sensitive file behind an innocent-looking link."""
    root, outside = make_tree(tmp_path)
    (root / ".env.local").write_text("X=1\n")
    os.symlink(".env.local", root / "innocent.txt")
    return root, outside


@pytest.mark.parametrize(
    "path",
    [
        "../proj-evil/loot.txt",
        "src/../../proj-evil/loot.txt",
        "a/../../x",
        "..",
        "./..",
        "src/..",
        "..\\..\\etc\\passwd",
        "/etc/passwd",
        "\\etc\\passwd",
        "~/.ssh/id_rsa",
        "src/main.py\0.txt",
    ],
)
def test_traversal_spellings_are_refused(path: str) -> None:
    assert code_of(normalize_relative, path) == ErrorCode.PATH_TRAVERSAL


@pytest.mark.parametrize("path", ["%2e%2e/%2e%2e/etc/passwd", "..%2f..%2fetc", "....//etc", "…/x"])
def test_encoded_looking_paths_stay_literal_names_inside_root(tree, path: str) -> None:
    root, _ = tree
    rel = normalize_relative(path)
    assert code_of(PathPolicy(root).open_file, rel) == ErrorCode.FILE_NOT_FOUND


def test_normalize_keeps_plain_relative_paths() -> None:
    assert normalize_relative("./src//main.py") == "src/main.py"
    assert normalize_relative(".") == ""


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b.py", ".", "..", "", "\\", "..\\x", "~", "x\0"]), max_size=5)
)
def test_normalize_drops_empty_and_dot_names_and_refuses_dot_dot(parts: list[str]) -> None:
    """What the platform sends as 'a//./b' is 'a/b'; a '..' between '/' or '\\' is refused."""
    path = "/".join(parts)
    names = path.replace("\\", "/").split("/")
    if "\0" in path or path.startswith(("/", "\\", "~")) or ".." in names:
        assert code_of(normalize_relative, path) == ErrorCode.PATH_TRAVERSAL
    else:
        assert normalize_relative(path) == "/".join(p for p in parts if p not in ("", "."))


@pytest.mark.parametrize("link", ["link_file_out", "rel_link_out", "link_dir_out/loot.txt"])
def test_symlinks_pointing_outside_are_traversal(tree, link: str) -> None:
    root, _ = tree
    assert code_of(PathPolicy(root).open_file, link) == ErrorCode.PATH_TRAVERSAL


def test_sibling_directory_with_root_name_prefix_is_outside(tree) -> None:
    root, outside = tree
    os.symlink(str(outside) + "/loot.txt", root / "abs_sibling")
    assert str(outside).startswith(str(root))
    assert code_of(PathPolicy(root).open_file, "abs_sibling") == ErrorCode.PATH_TRAVERSAL


def test_symlinks_inside_root_are_followed(tree) -> None:
    root, _ = tree
    policy = PathPolicy(root)
    for rel in ("link_in", "abs_dir_in/main.py"):
        opened = policy.open_file(rel)
        try:
            assert opened.real_path == "src/main.py"
            assert os.read(opened.fd, 100) == b"inside\n"
        finally:
            os.close(opened.fd)


def test_symlink_to_a_sensitive_file_is_sensitive(tree) -> None:
    root, _ = tree
    assert code_of(PathPolicy(root).open_file, "innocent.txt") == ErrorCode.SENSITIVE_PATH


def test_symlinked_dir_reaching_a_denied_path_is_sensitive(tree) -> None:
    root, _ = tree
    (root / "data" / "private").mkdir(parents=True)
    (root / "data" / "private" / "x.csv").write_text("pii\n")
    os.symlink("data", root / "alias")
    policy = PathPolicy(root, deny=["data/private/**"])
    assert code_of(policy.open_file, "alias/private/x.csv") == ErrorCode.SENSITIVE_PATH


def test_symlink_loop_is_refused(tree) -> None:
    root, _ = tree
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    assert code_of(PathPolicy(root).open_file, "loop_a") == ErrorCode.PATH_TRAVERSAL


def walk_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path takes the component walk (test_direct_open.py covers the one-call open)."""
    monkeypatch.setattr(DirectOpener, "open_regular", lambda *_args: None)


def swap_main_py_before_open(
    root: Path, monkeypatch: pytest.MonkeyPatch, replace: Callable[[Path], None]
) -> None:
    """Once the walk has checked src/main.py and is about to open it, `replace` the file."""
    walk_only(monkeypatch)
    original = PathPolicy._open_checked

    def swap_then_open(name, dir_fd, flags, st, rel):
        if name == "main.py":
            os.unlink(root / "src" / "main.py")
            replace(root / "src" / "main.py")
        return original(name, dir_fd, flags, st, rel)

    monkeypatch.setattr(PathPolicy, "_open_checked", staticmethod(swap_then_open))


@pytest.mark.parametrize(
    "make_link",
    [
        # The lstat saw a regular file; by the open it is a symlink out: O_NOFOLLOW catches it.
        pytest.param(os.symlink, id="outside_symlink"),
        # A different inode at the same name (hard link from outside) fails the fstat check.
        pytest.param(os.link, id="hard_link_to_outside_file"),
    ],
)
def test_file_swapped_between_check_and_open(tree, monkeypatch, make_link) -> None:
    root, outside = tree
    swap_main_py_before_open(root, monkeypatch, lambda path: make_link(outside / "loot.txt", path))
    assert code_of(PathPolicy(root).open_file, "src/main.py") == ErrorCode.PATH_TRAVERSAL


def test_directory_swapped_after_it_was_opened_still_reads_inside(tree, monkeypatch) -> None:
    """Once a directory fd is held, swapping the directory for a link out cannot redirect us."""
    root, outside = tree
    walk_only(monkeypatch)
    original = PathPolicy._open_checked

    def open_then_swap(name, dir_fd, flags, st, rel):
        fd = original(name, dir_fd, flags, st, rel)
        if name == "src":
            os.rename(root / "src", root / "src_moved")
            os.symlink(outside, root / "src")
            (outside / "main.py").write_text("outside secret\n")
        return fd

    monkeypatch.setattr(PathPolicy, "_open_checked", staticmethod(open_then_swap))
    opened = PathPolicy(root).open_file("src/main.py")
    try:
        assert os.read(opened.fd, 100) == b"inside\n"
    finally:
        os.close(opened.fd)


@pytest.mark.timeout(10)
def test_fifo_is_refused_without_opening(tree) -> None:
    root, _ = tree
    os.mkfifo(root / "pipe")
    assert code_of(PathPolicy(root).open_file, "pipe") == ErrorCode.PERMISSION_DENIED


@pytest.mark.timeout(10)
def test_socket_is_refused(tree) -> None:
    root, _ = tree
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "sock"))
        assert code_of(PathPolicy(root).open_file, "sock") == ErrorCode.PERMISSION_DENIED
    finally:
        sock.close()


def test_device_behind_a_symlink_is_traversal(tree) -> None:
    root, _ = tree
    os.symlink("/dev/zero", root / "zero")
    assert code_of(PathPolicy(root).open_file, "zero") == ErrorCode.PATH_TRAVERSAL


def test_missing_file_and_directory(tree) -> None:
    root, _ = tree
    policy = PathPolicy(root)
    assert code_of(policy.open_file, "nope.py") == ErrorCode.FILE_NOT_FOUND
    assert code_of(policy.open_file, "src/main.py/x") == ErrorCode.FILE_NOT_FOUND
    assert code_of(policy.open_file, "src") == ErrorCode.FILE_NOT_FOUND  # Opik's code


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a 000 file")
def test_unreadable_file_is_permission_denied(tree) -> None:
    root, _ = tree
    (root / "locked.txt").write_text("x")
    os.chmod(root / "locked.txt", 0)
    assert code_of(PathPolicy(root).open_file, "locked.txt") == ErrorCode.PERMISSION_DENIED


def test_permission_error_on_open_is_permission_denied(tree, monkeypatch) -> None:
    """Simulated EACCES (the tests may run as root, who can read a mode-000 file)."""
    root, _ = tree
    walk_only(monkeypatch)
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if path == "main.py":
            raise PermissionError(errno.EACCES, "denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    assert code_of(PathPolicy(root).open_file, "src/main.py") == ErrorCode.PERMISSION_DENIED


@pytest.mark.timeout(10)
def test_file_swapped_for_a_fifo_before_open_does_not_hang(tree, monkeypatch) -> None:
    root, _ = tree
    swap_main_py_before_open(root, monkeypatch, os.mkfifo)
    assert code_of(PathPolicy(root).open_file, "src/main.py") == ErrorCode.PATH_TRAVERSAL


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".git/objects/ab/cdef",
        "sub/.git/HEAD",
        ".env",
        ".env.production",
        "config/.env.local",
        "certs/server.pem",
        "tls.key",
        "store.p12",
        "id_rsa",
        "id_rsa.pub",
        "home/.ssh/id_ed25519",
        ".netrc",
        ".npmrc",
        ".pypirc",
        "credentials.json",
        "aws/credentials",
        "secrets.yaml",
        "config/client_secret.json",
        "MY_SECRETS.TXT",
        "secrets/db.yaml",
        "prod.env",
        "deploy/staging.env",
        ".envrc",
        "kubeconfig",
        "ops/cluster.kubeconfig",
        "home/.kube/config",
        "home/.docker/config.json",
        ".git-credentials",
        "home/.aws/credentials",
        "home/.aws/config",
        "infra/terraform.tfstate",
        "infra/terraform.tfstate.backup",
        "infra/prod.tfvars",
        "infra/prod.auto.tfvars.json",
        ".htpasswd",
        "home/.ssh/known_hosts",
    ],
)
def test_sensitive_paths(tmp_path: Path, path: str) -> None:
    policy = PathPolicy(tmp_path)
    assert policy.is_sensitive(path)
    assert code_of(policy.check_sensitive, path) == ErrorCode.SENSITIVE_PATH


@pytest.mark.parametrize(
    "path",
    [
        "src/app.py",
        ".gitignore",
        "environment.py",
        "keys.py",
        "a.pem.md",
        "docs/config.json",
        "kube/config.py",
        "envs.py",
    ],
)
def test_ordinary_paths_are_not_sensitive(tmp_path: Path, path: str) -> None:
    assert not PathPolicy(tmp_path).is_sensitive(path)


def test_deny_globs_from_config(tmp_path: Path) -> None:
    policy = PathPolicy(tmp_path, deny=["*.sqlite", "data/private/**", "internal"])
    assert policy.is_sensitive("db/app.sqlite")
    assert policy.is_sensitive("data/private/a/b.csv")
    assert policy.is_sensitive("internal/x.py")
    assert policy.is_sensitive("src/internal/y.py")
    assert not policy.is_sensitive("data/public/a.csv")
    assert not policy.is_sensitive("src/app.py")


def test_glob_translation() -> None:
    assert compile_glob("**/*").match("a.py")
    assert compile_glob("**/*").match("a/b/c.py")
    assert compile_glob("*.py").match("a.py")
    assert not compile_glob("*.py").match("a/b.py")
    assert compile_glob("src/**/*.py").match("src/x/y.py")
    assert compile_glob("src/**/*.py").match("src/y.py")
    assert compile_glob("file_[0-9].txt").match("file_3.txt")
    assert not compile_glob("file_[!0-9].txt").match("file_3.txt")


COMPONENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "src",
        "main.py",
        "link_file_out",
        "link_dir_out",
        "rel_link_out",
        "link_in",
        "abs_dir_in",
        "loot.txt",
        "proj-evil",
        "%2e%2e",
        "..\\",
        "~",
        "\0",
        "/",
    ]
)


@pytest.fixture(scope="module")
def fixed_tree(tmp_path_factory) -> Path:
    root, _ = make_tree(tmp_path_factory.mktemp("hyp"))
    return root


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(COMPONENTS, min_size=1, max_size=6), sep=st.sampled_from(["/", "//", "\\"]))
def test_no_generated_path_is_read_from_outside_the_root(fixed_tree: Path, parts, sep) -> None:
    policy = PathPolicy(fixed_tree)
    try:
        rel = normalize_relative(sep.join(parts))
        opened = policy.open_file(rel)
    except BridgeError:
        return
    try:
        real = os.path.realpath(f"/proc/self/fd/{opened.fd}")
        assert real.startswith(str(fixed_tree.resolve()) + "/")
        assert os.read(opened.fd, 100) == b"inside\n"
    finally:
        os.close(opened.fd)


def test_a_colon_in_a_name_is_an_ordinary_name_on_posix(tmp_path: Path) -> None:
    """No Windows drive-letter rule: `a:b.py` and `C:/x` are relative names here."""
    (tmp_path / "a:b.py").write_text("x = 1\n")
    assert normalize_relative("a:b.py") == "a:b.py"
    assert normalize_relative("C:/Windows/win.ini") == "C:/Windows/win.ini"
    opened = PathPolicy(tmp_path).open_file("a:b.py")
    os.close(opened.fd)
    assert opened.real_path == "a:b.py"


def test_link_replaced_by_a_file_before_readlink_is_a_named_error(tree, monkeypatch) -> None:
    """The swap race: lstat saw a link, readlink finds a file (EINVAL) or nothing (ENOENT)."""
    root, _ = tree
    for err in (errno.EINVAL, errno.ENOENT):

        def swapped(*_args, err=err, **_kwargs):
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(os, "readlink", swapped)
        assert code_of(PathPolicy(root).open_file, "link_in") == ErrorCode.PATH_TRAVERSAL


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "glob",
    ["**?" * 40 + "X", "*?" * 200 + "X", "**/" * 100 + "*X", "[a-z]*" * 100 + "Q"],
)
def test_globs_match_in_linear_time(glob: str) -> None:
    """Each of these took exponential time in the old backtracking translation."""
    path = "a/" * 30 + "b" * 200
    assert compile_glob(glob).match(path) is None


@pytest.mark.parametrize("glob", ["[z-a]", "x" * 1001])
def test_bad_globs_are_invalid_args(glob: str) -> None:
    assert code_of(compile_glob, glob) == ErrorCode.INVALID_ARGS
