"""What each search reads and redacts, the measure of the secret-oracle tests: where a search's
time goes must not depend on a secret's value."""

from __future__ import annotations

from opik_connect.connect.sandbox import search_files


def record_search_reads(monkeypatch) -> list[list[str]]:
    """The files each search then reads and redacts (what its time is spent on), in order."""
    read: list[list[str]] = []
    scan = search_files.scan_files

    def recording(policy, paths, *args, **kwargs):
        read.append(sorted(paths))
        return scan(policy, paths, *args, **kwargs)

    monkeypatch.setattr(search_files, "scan_files", recording)
    return read
