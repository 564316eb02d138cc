"""Finding the agent under test by AST scan (no import) or from config."""

import subprocess
from pathlib import Path

import pytest

from opik_connect.connect.suites.entrypoint import find_entrypoint, scan_entrypoints
from opik_connect.protocol import BridgeError, ErrorCode


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_finds_opik_track_entrypoint_in_a_src_layout(tmp_path: Path) -> None:
    write(tmp_path, "src/pkg/__init__.py", "")
    write(tmp_path, "src/pkg/sub/__init__.py", "")
    write(
        tmp_path,
        "src/pkg/sub/agent.py",
        "import opik\n\n@opik.track(name='x')\ndef helper(): ...\n\n"
        "@opik.track(entrypoint=True)\nasync def run(q): ...\n",
    )
    write(tmp_path, "src/pkg/sub/broken.py", "def (:\n")
    spec = find_entrypoint(tmp_path)
    assert (spec.module, spec.function, spec.import_root) == ("pkg.sub.agent", "run", "src")
    assert spec.source == "src/pkg/sub/agent.py"


def test_from_opik_import_track_with_alias(tmp_path: Path) -> None:
    write(
        tmp_path, "agent.py", "from opik import track as t\n\n@t(entrypoint=True)\ndef go(): ...\n"
    )
    spec = find_entrypoint(tmp_path)
    assert (spec.module, spec.function, spec.import_root) == ("agent", "go", ".")


def test_no_entrypoint_is_an_error_saying_how_to_declare_one(tmp_path: Path) -> None:
    write(tmp_path, "agent.py", "import opik\n\n@opik.track\ndef go(): ...\n")
    write(tmp_path, ".venv/lib/x.py", "import opik\n@opik.track(entrypoint=True)\ndef v(): ...\n")
    with pytest.raises(BridgeError) as caught:
        find_entrypoint(tmp_path)
    assert caught.value.code == ErrorCode.ENTRYPOINT_NOT_FOUND
    assert "entrypoint=True" in caught.value.message


def test_several_entrypoints_are_listed(tmp_path: Path) -> None:
    marked = "import opik\n\n@opik.track(entrypoint=True)\ndef {name}(): ...\n"
    write(tmp_path, "a.py", marked.format(name="first"))
    write(tmp_path, "b.py", marked.format(name="second"))
    with pytest.raises(BridgeError) as caught:
        find_entrypoint(tmp_path)
    assert caught.value.code == ErrorCode.ENTRYPOINT_AMBIGUOUS
    assert caught.value.details["candidates"] == ["a:first (a.py)", "b:second (b.py)"]


def test_config_wins_and_must_point_into_the_tree(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "import opik\n\n@opik.track(entrypoint=True)\ndef first(): ...\n")
    write(tmp_path, "src/app/main.py", "def serve(): ...\n")
    write(tmp_path, "pyproject.toml", '[tool.opik-connect]\nentrypoint = "app.main:serve"\n')
    spec = find_entrypoint(tmp_path)
    assert (spec.module, spec.function, spec.import_root) == ("app.main", "serve", "src")
    write(tmp_path, "pyproject.toml", '[tool.opik-connect]\nentrypoint = "json:loads"\n')
    with pytest.raises(BridgeError) as caught:
        find_entrypoint(tmp_path)
    assert caught.value.code == ErrorCode.ENTRYPOINT_NOT_FOUND
    assert "not in the tree" in caught.value.message


def test_every_form_the_sdk_registers(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.py",
        "from opik.decorator.tracker import track\n\n@track(entrypoint=True)\ndef one(): ...\n",
    )
    write(
        tmp_path,
        "b.py",
        "import opik\n\ndef two(): ...\n\ntwo = opik.track(entrypoint=True)(two)\n",
    )
    write(
        tmp_path,
        "c.py",
        "import os, opik\nif os.environ.get('X') is None:\n"
        "    @opik.track(entrypoint=True)\n    def three(): ...\n",
    )
    write(
        tmp_path,
        "d.py",
        "import opik\nENTRY = True\n\n@opik.track(entrypoint=ENTRY)\ndef four(): ...\n",
    )
    write(
        tmp_path, "e.py", "import opik\nOFF = False\n\n@opik.track(entrypoint=OFF)\ndef no(): ...\n"
    )
    labels = [spec.label for spec in scan_entrypoints(tmp_path)]
    assert labels == ["a:one", "b:two", "c:three", "d:four"]


def test_git_view_skips_ignored_files_and_keeps_a_package_named_env(tmp_path: Path) -> None:
    marked = "import opik\n\n@opik.track(entrypoint=True)\ndef {name}(): ...\n"
    write(tmp_path, "env/__init__.py", "")
    write(tmp_path, "env/agent.py", marked.format(name="real"))
    write(tmp_path, "scratch/stub.py", marked.format(name="stub"))
    write(tmp_path, ".gitignore", "scratch/\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert find_entrypoint(tmp_path).label == "env.agent:real"


def test_a_suite_names_its_entrypoint_among_several(tmp_path: Path) -> None:
    marked = "import opik\n\n@opik.track(entrypoint=True)\ndef {name}(): ...\n"
    write(tmp_path, "a.py", marked.format(name="first"))
    write(tmp_path, "b.py", marked.format(name="second"))
    with pytest.raises(BridgeError) as caught:
        find_entrypoint(tmp_path)
    assert "name one in the suite file" in caught.value.message
    assert find_entrypoint(tmp_path, "b:second").label == "b:second"
    with pytest.raises(BridgeError, match="the suite's entrypoint 'nope:x'"):
        find_entrypoint(tmp_path, "nope:x")
