"""Running ripgrep for a search and parsing its `--json` stream into per-file hits."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from opik_connect.connect.child_process import child_process
from opik_connect.connect.sandbox.search_hits import (
    MAX_SEARCH_MATCHES,
    Budget,
    FileHits,
    hides_only_secret,
    strip_eol,
)
from opik_connect.connect.sandbox.secret_redaction import might_contain_secret
from opik_connect.protocol import BridgeError, ErrorCode

_RG_READ_BYTES = 1 << 18
_RG_BEGIN = b'{"type":"begin"'
_RG_BEGIN_TEXT = b'{"type":"begin","data":{"path":{"text":'
_RG_LINE_TEXT = b'"lines":{"text":'


def find_ripgrep() -> str | None:
    """`rg` from the ripgrep wheel next to our interpreter first, else on PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("rg")


def _json_line_text(raw: bytes) -> str:
    """The still JSON-escaped line text of an rg match record, without decoding the record."""
    start = raw.find(_RG_LINE_TEXT)
    end = raw.find(b'},"line_number"', start)
    if start == -1 or end == -1:
        return raw.decode("utf-8", "replace")
    return raw[start + len(_RG_LINE_TEXT) : end].decode("utf-8", "replace")


class RgStream:
    """Parses one `rg --json` stream; matches past the budget are counted without being decoded.
    Context lines come from the files afterwards, for the kept matches only."""

    def __init__(self, budget: Budget, regex: re.Pattern[str] | None) -> None:
        self.budget = budget
        self.regex = regex
        self.files: list[FileHits] = []
        self.current: FileHits | None = None

    def feed(self, raw: bytes) -> None:
        if raw.startswith(_RG_BEGIN):
            if raw.startswith(_RG_BEGIN_TEXT) and raw.endswith(b"}}}"):
                quoted = raw[len(_RG_BEGIN_TEXT) : -3]
                name = json.loads(quoted) if b"\\" in quoted else quoted[1:-1].decode()
                self.current = FileHits(path=name.removeprefix("./"))
            else:
                self.current = FileHits(path="", bad=True)
            return
        hit = self.current
        if hit is None:
            return
        if raw.startswith(b'{"type":"end"'):
            if b'"binary_offset":null' not in raw:
                hit.bad = True
            self.files.append(hit)
            self.current = None
            return
        if not raw.startswith(b'{"type":"match"'):
            return
        hit.matched_lines += 1
        if hit.bad or b'"lines":{"bytes"' in raw:
            hit.bad = True
            return
        if self.budget.stored < MAX_SEARCH_MATCHES:
            data = json.loads(raw)["data"]
            hit.lines.append((data["line_number"], strip_eol(data["lines"]["text"]), True))
            self.budget.stored += 1
        elif might_contain_secret(_json_line_text(raw)):
            text = strip_eol(json.loads(raw)["data"]["lines"]["text"])
            hit.dropped += hides_only_secret(text, self.regex)


async def run_rg(cmd: list[str], root: Path, stream: RgStream) -> None:
    """Run one rg command in `root`, feeding its JSON lines to `stream`."""
    async with child_process(*cmd, cwd=root) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        pending = bytearray()
        while chunk := await proc.stdout.read(_RG_READ_BYTES):
            pending += chunk
            end = pending.rfind(b"\n")
            if end == -1:
                continue
            block = bytes(pending[:end])
            del pending[: end + 1]
            for raw in block.split(b"\n"):
                stream.feed(raw)
        if pending:
            stream.feed(bytes(pending))
        err = await proc.stderr.read()
        code = await proc.wait()
    if code == 2 and b"regex" in err:
        message = err.decode(errors="replace").strip().splitlines()[-1]
        raise BridgeError(ErrorCode.INVALID_ARGS, f"invalid regex: {message}", field="pattern")
