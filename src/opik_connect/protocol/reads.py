"""Read commands (platform -> daemon), with the names and fields of Opik's own bridge."""

from __future__ import annotations

from pydantic import Field

from opik_connect.protocol.codes import Strict


class ReadFileArgs(Strict):
    path: str = Field(description="File path relative to the repo root.")
    offset: int = Field(0, ge=0, description="First line to return, 0-based.")
    limit: int = Field(2000, ge=1, le=10_000, description="Maximum number of lines.")


class ReadFileResult(Strict):
    content: str
    total_lines: int
    truncated: bool
    encoding: str = "utf-8"
    redactions: int = 0


class ListFilesArgs(Strict):
    pattern: str = Field("**/*", description="Glob, default '**/*'.")
    path: str = Field(".", description="Directory to list, default '.'.")


class ListFilesResult(Strict):
    files: list[str]
    total: int
    truncated: bool


class SearchFilesArgs(Strict):
    pattern: str = Field(max_length=500, description="A regular expression.")
    glob: str | None = Field(None, description="Only files matching this glob.")
    path: str = Field(".", description="Directory to search, default '.'.")


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
