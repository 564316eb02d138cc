"""A sample of the drift corpus: every apply kind applied as intended, every refusal refused."""

from __future__ import annotations

import pytest
from edit_corpus import cases, score

SAMPLE = cases(per_kind=2, seed=7)


@pytest.mark.parametrize("case", SAMPLE, ids=[f"{c.kind} ({c.source})" for c in SAMPLE])
def test_corpus_case(case) -> None:
    assert score(case) == ("refused" if case.expected is None else "applied")
