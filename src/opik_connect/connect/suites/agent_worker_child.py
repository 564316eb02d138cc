"""The child side of an agent worker: one long-lived Python rooted at the tree under test.

Run as `python -P agent_worker_child.py TREE IMPORT_ROOT MODULE FUNCTION`; stdlib only, because it
runs inside the user's environment. It reads one JSON request per line on stdin and writes one JSON
reply per line on a private copy of the original stdout; fd 1 itself is then pointed at stderr, so
whatever the agent prints (even from C code) can never corrupt the channel.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any


def _send(channel: Any, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=repr) + "\n")
    channel.flush()


def _opik_shim() -> None:
    """Let `@opik.track(...)` decorate as a no-op when the opik SDK is not installed."""
    try:
        importlib.import_module("opik")
    except ModuleNotFoundError:
        shim = types.ModuleType("opik")

        def track(*args: Any, **kwargs: Any) -> Any:
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return args[0]
            return lambda function: function

        shim.track = track  # type: ignore[attr-defined]
        sys.modules["opik"] = shim


def _load(tree: Path, import_root: Path, module_name: str, function_name: str) -> Any:
    sys.path.insert(0, str(import_root))
    _opik_shim()
    module = importlib.import_module(module_name)
    origin = Path(getattr(module, "__file__", "") or "").resolve()
    if not origin.is_relative_to(tree):
        raise ImportError(f"{module_name} resolved to {origin}, outside the tree under test {tree}")
    return getattr(module, function_name)


def _call(function: Any, kwargs: dict[str, Any]) -> Any:
    result = function(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result if isinstance(result, dict) else {"output": result}


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main() -> int:
    tree_arg, root_arg, module_name, function_name = sys.argv[1:5]
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    tree = Path(tree_arg).resolve()
    os.chdir(tree)
    try:
        function = _load(tree, (tree / root_arg).resolve(), module_name, function_name)
    except BaseException:
        _send(channel, {"ready": False, "error": traceback.format_exc()})
        return 1
    _send(channel, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"id": request["id"], "ok": True, "result": _call(function, request["kwargs"])}
        except BaseException as exc:
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None
            text = "".join(traceback.format_exception(type(exc), exc, frames))
            reply = {"id": request["id"], "ok": False, "error": text}
        sys.stderr.flush()
        _send(channel, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
