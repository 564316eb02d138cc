"""Redaction precision and recall: false positives per 10,000 lines of real code, and a recall
table over the secret shapes of the rule list.

Run: .venv/bin/python bench/redaction.py [--corpus DIR] [--examples 5]
The corpus defaults to the venv's site-packages (real code, lock-like RECORD files full of
sha256 digests, docs); every redaction there is counted as a false positive, so the figure is
an upper bound. Recall uses tests/secret_samples.py, each sample alone and inside a line of
code, YAML and JSON. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import re
import site
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from secret_samples import NOT_SECRETS, SECRETS

from opik_connect.connect.sandbox.secret_redaction import redact

SUFFIXES = {".py", ".pyi", ".txt", ".md", ".rst", ".json", ".toml", ".cfg", ".ini", ".yaml"}
NAMES = {"RECORD", "METADATA"}
KIND = re.compile(r"\[REDACTED:([a-z_]+)\]")


def corpus_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and (p.suffix in SUFFIXES or p.name in NAMES)
    )


def precision(root: Path, examples: int) -> None:
    lines = 0
    kinds: collections.Counter[str] = collections.Counter()
    shown: dict[str, list[str]] = collections.defaultdict(list)
    started = time.perf_counter()
    files = corpus_files(root)
    for path in files:
        try:
            text = path.read_text("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        lines += text.count("\n")
        out, count = redact(text)
        if not count:
            continue
        for before, after in zip(text.split("\n"), out.split("\n"), strict=True):
            if before == after:
                continue
            for kind in KIND.findall(after):
                kinds[kind] += 1
                if len(shown[kind]) < examples:
                    shown[kind].append(f"{path.relative_to(root)}: {before.strip()[:110]}")
    elapsed = time.perf_counter() - started
    total = sum(kinds.values())
    print(f"corpus: {root} ({len(files)} files, {lines:,} lines, {elapsed:.1f}s)")
    print(f"redactions: {total}  ->  {total / lines * 10_000:.2f} per 10,000 lines (all counted")
    print("as false positives: the corpus is public code)")
    for kind, n in kinds.most_common():
        print(f"  {kind:<22} {n:>6}  {n / lines * 10_000:6.2f} /10k")
        for line in shown[kind]:
            print(f"      e.g. {line}")


def recall() -> None:
    wrappers = {
        "alone": "{}",
        "python": "    config = dict(value={})",
        "yaml": "  setting: {}",
        "json": '  {{"field": "{}"}}',
    }
    print("\nrecall over the rule list (sample redacted and its secret fragment gone):")
    print(f"  {'kind':<22} {'samples':>7} " + " ".join(f"{w:>7}" for w in wrappers))
    by_kind: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for kind, text, secret in SECRETS:
        by_kind[kind].append((text, secret))
    hits = tries = 0
    for kind, samples in by_kind.items():
        row = []
        for wrapper in wrappers.values():
            ok = sum(secret not in redact(wrapper.format(text))[0] for text, secret in samples)
            hits, tries = hits + ok, tries + len(samples)
            row.append(f"{ok}/{len(samples)}")
        print(f"  {kind:<22} {len(samples):>7} " + " ".join(f"{c:>7}" for c in row))
    print(f"  overall recall: {hits}/{tries} = {hits / tries:.1%}")
    kept = sum(redact(text)[1] == 0 for text in NOT_SECRETS)
    print(f"  look-alikes kept intact (digests, integrity hashes, code): {kept}/{len(NOT_SECRETS)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(site.getsitepackages()[0])
    parser.add_argument("--corpus", type=Path, default=default)
    parser.add_argument("--examples", type=int, default=3)
    args = parser.parse_args()
    precision(args.corpus, args.examples)
    recall()


if __name__ == "__main__":
    main()
