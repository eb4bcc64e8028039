"""compare: bad sample counts and data end in one line.

The rows run in-process (``tests/_cli_cases.py``); ``tests/cli/test_e2e.py`` runs a few through the
real entry point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._cli_cases import Case, check_bad_input

CASES = [
    Case("compare-huge-finite-data", ["compare", "{model}", "{int8.onnx}", "--data", "{huge.npy}"],
         ["reference resnet20.onnx on cpu computed non-finite values in block stem", "3e+38", "preprocessing"], []),
    Case("compare-samples-negative", ["compare", "{model}", "{model}", "--samples", "-2"],
         ["--samples must be between 1 and 1,000", "-2"], []),
    Case("compare-samples-zero", ["compare", "{model}", "{model}", "--samples", "0"],
         ["--samples must be between 1 and 1,000", "0"], []),
    Case("compare-samples-huge", ["compare", "{model}", "{model}", "--samples", "1000000"],
         ["--samples must be between 1 and 1,000, received 1000000", "compare in several runs"], []),
    Case("compare-data-scalar", ["compare", "{model}", "{model}", "--data", "{scalar.npy}"],
         ["scalar.npy", "has shape []"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_table(case: Case, files: dict[str, Path], tmp_path: Path) -> None:
    check_bad_input(case, files, tmp_path)
