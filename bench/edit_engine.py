"""The edit engine on the drift corpus (tests/edit_corpus.py): applied / refused / wrong per kind.

Run: .venv/bin/python bench/edit_engine.py [--per-kind 20] [--seed 13]
Cases are model-style edits and diffs against real Python files from the stdlib, each carrying
one kind of drift; refusal kinds must be refused. Targets: "wrong" 0 for every kind, and at
least 95% of the apply kinds' cases applied. Exits 1 when a target is missed. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from edit_corpus import cases, score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    opts = parser.parse_args()
    results: dict[str, Counter[str]] = defaultdict(Counter)
    refusal: dict[str, bool] = {}
    started = time.perf_counter()
    for case in cases(opts.per_kind, opts.seed):
        results[case.kind][score(case)] += 1
        refusal[case.kind] = case.expected is None
    elapsed = time.perf_counter() - started
    print(f"{'kind':40} {'applied':>8} {'refused':>8} {'wrong':>6}")
    for kind, counts in results.items():
        print(f"{kind:40} {counts['applied']:8} {counts['refused']:8} {counts['wrong']:6}")
    apply_kinds = [c for k, c in results.items() if not refusal[k]]
    applied = sum(c["applied"] for c in apply_kinds)
    total = sum(c.total() for c in apply_kinds)
    wrong = sum(c["wrong"] for c in results.values())
    print(
        f"\napply kinds: {applied}/{total} applied ({100 * applied / total:.1f}%); "
        f"wrong content: {wrong}; {sum(map(Counter.total, results.values()))} cases "
        f"in {elapsed:.1f}s"
    )
    return 0 if wrong == 0 and applied >= 0.95 * total else 1


if __name__ == "__main__":
    sys.exit(main())
