"""The child side of an agent worker: one long-lived Python rooted at the tree under test.

Run as `python agent_worker_child.py TREE IMPORT_ROOT MODULE FUNCTION` by the agent's own
interpreter, where opik-connect is not installed: stdlib only, Python 3.9+. It reads one JSON
request per line on stdin ({id, data, call, trace}: `call` "kwargs" runs entrypoint(**data),
"run_tests" runs entrypoint(data) and checks the result as `opik.run_tests` does) and writes
one JSON reply per line on a private copy of the original
stdout; fd 1 itself is then pointed at stderr, so whatever the agent prints (even from C code) can
never corrupt the channel. Where the environment lacks the opik SDK a stand-in keeps `track` (every
form) and `opik_context` working, tracing nothing. The real SDK, imported by the agent once per
worker, is flushed at end of input within FLUSH_TIMEOUT_S, so no trace is lost when a worker leaves.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

FLUSH_TIMEOUT_S = 20
"""The parent waits this plus a margin for a worker to leave before killing it."""


def _send(channel: Any, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=repr) + "\n")
    channel.flush()


def _track(*args: Any, **kwargs: Any) -> Any:
    """The stand-in's `track`: `@track`, `@track(...)`, `track(fn)`, `track(...)(fn)`."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda function: function


def _install_stand_in() -> None:
    """A do-nothing `opik` with the import paths agents use, for environments without the SDK."""
    opik = types.ModuleType("opik")
    context = types.ModuleType("opik.opik_context")
    decorator = types.ModuleType("opik.decorator")
    tracker = types.ModuleType("opik.decorator.tracker")
    for name in ("get_current_span_data", "get_current_trace_data"):
        setattr(context, name, lambda: None)
    for name in ("update_current_span", "update_current_trace"):
        setattr(context, name, lambda *args, **kwargs: None)
    context.get_distributed_trace_headers = lambda: {}  # type: ignore[attr-defined]
    tracker.track = _track  # type: ignore[attr-defined]
    tracker.flush_tracker = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    decorator.tracker = tracker  # type: ignore[attr-defined]
    opik.track = _track  # type: ignore[attr-defined]
    opik.flush_tracker = tracker.flush_tracker  # type: ignore[attr-defined]
    opik.opik_context = context  # type: ignore[attr-defined]
    opik.decorator = decorator  # type: ignore[attr-defined]
    opik.__version__ = "0+opik-connect-stand-in"  # type: ignore[attr-defined]
    opik.__opik_connect_stand_in__ = True  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "opik": opik,
            "opik.opik_context": context,
            "opik.decorator": decorator,
            "opik.decorator.tracker": tracker,
        }
    )


def _prepare_opik() -> None:
    if importlib.util.find_spec("opik") is None:
        _install_stand_in()


def _real_sdk() -> Any:
    """The real opik module once the agent imported it; None for the stand-in or no import."""
    module = sys.modules.get("opik")
    return None if module is None or hasattr(module, "__opik_connect_stand_in__") else module


def _tracing_on() -> bool:
    """The SDK takes `opik_args` only when it traces: a disabled `track` passes it through."""
    disabled = os.environ.get("OPIK_TRACK_DISABLE", "").strip().lower() in ("1", "true", "yes")
    return not disabled and _real_sdk() is not None


def _load(tree: Path, import_root: Path, module_name: str, function_name: str) -> Any:
    sys.path.insert(0, str(import_root))
    module = importlib.import_module(module_name)
    origin = Path(getattr(module, "__file__", "") or "").resolve()
    if not origin.is_relative_to(tree):
        raise ImportError(f"{module_name} resolved to {origin}, outside the tree under test {tree}")
    return getattr(module, function_name)


def _trace_for(function: Any, trace: Any) -> Any:
    """The run's trace args, with an id of our own when the SDK takes one (`opik_args` trace
    `id`), so the run's result can name its trace; None when nothing will be traced."""
    if not (trace and _tracing_on() and getattr(function, "opik_tracked", False)):
        return None
    try:
        from opik.decorator.opik_args.api_classes import OpikArgsTrace
        from opik.id_helpers import generate_id
    except ImportError:
        return trace
    if "id" not in getattr(OpikArgsTrace, "model_fields", {}):
        return trace
    return dict(trace, id=generate_id())


def _call(function: Any, data: dict[str, Any], call: str, trace: Any) -> Any:
    extra = {} if trace is None else {"opik_args": {"trace": trace}}
    if call == "run_tests":
        return _task_result(_settle(function(data, **extra)), data)
    result = _settle(function(**data, **extra))
    return result if isinstance(result, dict) else {"output": result}


def _settle(result: Any) -> Any:
    return asyncio.run(_await(result)) if inspect.isawaitable(result) else result


def _task_result(result: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The SDK's `validate_task_result`: a dict must carry `input` and `output`; any other value
    is the output, with the item's data as the input."""
    if not isinstance(result, dict):
        return {"input": data, "output": result}
    missing = {"input", "output"} - result.keys()
    if missing:
        raise ValueError(
            "The task function must return a dict with 'input' and 'output' keys, but the "
            f"returned dict is missing: {sorted(missing)}. Got keys: {sorted(result)}. "
            "Example: return {'input': data, 'output': response}"
        )
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _flush() -> None:
    sdk = _real_sdk()
    if sdk is not None:
        try:
            sdk.flush_tracker(timeout=FLUSH_TIMEOUT_S)
        except Exception:
            traceback.print_exc()


def _load_failure() -> dict[str, Any]:
    exc = sys.exc_info()[1]
    message: dict[str, Any] = {"ready": False, "error": traceback.format_exc()}
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        message["missing_module"] = exc.name
    elif isinstance(exc, ImportError) and exc.name:
        message["broken_module"] = exc.name
    return message


def main() -> int:
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    tree_arg, root_arg, module_name, function_name = sys.argv[1:5]
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    tree = Path(tree_arg).resolve()
    os.chdir(tree)
    try:
        _prepare_opik()
        function = _load(tree, (tree / root_arg).resolve(), module_name, function_name)
    except BaseException:
        _send(channel, _load_failure())
        return 1
    _send(channel, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        trace = _trace_for(function, request.get("trace"))
        try:
            result = _call(function, request["data"], request.get("call", "kwargs"), trace)
            reply = {"id": request["id"], "ok": True, "result": result}
        except BaseException as exc:
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None
            text = "".join(traceback.format_exception(type(exc), exc, frames))
            reply = {"id": request["id"], "ok": False, "error": text}
        if trace is not None and trace.get("id"):
            reply["trace_id"] = trace["id"]
        sys.stderr.flush()
        _send(channel, reply)
    _flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
