"""examples/: every script compiles; the own-SMPL-file example says clearly what to pass when it is missing."""
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_compiles(script):
    py_compile.compile(str(EXAMPLES / script), doraise=True)


def test_own_smpl_file_without_the_file_exits_with_a_clear_message(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}  # no SMPLIFY_MODEL
    p = subprocess.run([sys.executable, str(EXAMPLES / "own_smpl_file.py"), str(tmp_path / "basicModel.pkl")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2 and "SMPL model file not found" in p.stderr and "smpl.is.tue.mpg.de" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
