"""The test kit's made-up instrument tokens are the same in every process, whatever PYTHONHASHSEED is: a test
that passes alone must pass in the full suite and under pytest-xdist workers too."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.execution_worker.domain.kit import token_of

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def token_in_a_process(hash_seed: str) -> int:
    code = ("from tests.execution_worker.domain.kit import leg\n"
            "print(leg('NIFTY26D0126000CE', 'BUY', 'CE', 26000).instrument_token)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": hash_seed})
    return int(out.stdout)


def test_tokens_do_not_depend_on_the_hash_seed():
    assert token_in_a_process("1") == token_in_a_process("2") == token_of("NIFTY26D0126000CE")
