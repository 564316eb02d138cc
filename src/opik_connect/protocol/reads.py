"""Read commands (platform -> daemon), with the names, fields and defaults of Opik's own bridge."""

from __future__ import annotations

from pydantic import Field

from opik_connect.protocol.codes import Strict

MAX_READ_LINES = 2000
"""ReadFile returns at most this many lines whatever `limit` asks (Opik clamps the same way)."""
MAX_LIST_DEPTH = 5
MAX_SEARCH_PATTERN_CHARS = 500


class ReadFileArgs(Strict):
    path: str = Field(description="File path relative to the repo root.")
    offset: int = Field(0, ge=0, description="First line to return, 0-based.")
    limit: int = Field(
        MAX_READ_LINES, ge=0, description=f"Maximum number of lines (at most {MAX_READ_LINES})."
    )


class ReadFileResult(Strict):
    content: str
    total_lines: int
    truncated: bool
    encoding: str = "utf-8"
    redactions: int = 0


class ListFilesArgs(Strict):
    path: str = Field("", description="Directory to list, relative to the repo root ('' = root).")
    pattern: str | None = Field(
        None,
        description="fnmatch pattern on a file's name or its path relative to `path` "
        "(`*` crosses '/'); directories are always listed.",
    )
    depth: int = Field(
        1,
        ge=1,
        le=MAX_LIST_DEPTH,
        description=f"How many levels to list (1 = immediate entries, at most {MAX_LIST_DEPTH}).",
    )


class ListFilesResult(Strict):
    files: list[str]
    """Entries relative to `path`, directories as 'dir/' first, then files."""
    total: int
    truncated: bool


class SearchFilesArgs(Strict):
    pattern: str = Field(
        description=f"A regular expression (RE2 syntax), 1-{MAX_SEARCH_PATTERN_CHARS} characters."
    )
    glob: str | None = Field(None, description="Only files matching this glob.")
    path: str = Field("", description="Directory (or file) to search ('' = the whole repo).")


class SearchMatch(Strict):
    file: str
    line: int
    content: str
    context_before: list[str] = Field(default_factory=list)
    context_after: list[str] = Field(default_factory=list)


class SearchFilesResult(Strict):
    matches: list[SearchMatch]
    total_matches: int
    truncated: bool
    redactions: int = 0
