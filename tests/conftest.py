import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Small splits keep CLI tests quick; the frozen-test-set rules are checked on full sizes elsewhere.
SMALL = ["--train-size", "3000", "--val-size", "100", "--test-size", "200", "--ood-size", "100"]


def run_cli(script, *args, cwd, timeout=120, env=None):
    """Run one of the project's scripts with no terminal; returns (CompletedProcess, seconds)."""
    t = time.time()
    p = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return p, time.time() - t


def assert_one_line_error(p):
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = [l for l in p.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, p.stderr


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One real 3-second gru run on small bracket data, shared by the evaluate tests."""
    cwd = tmp_path_factory.mktemp("work")
    p, _ = run_cli("train.py", "gru", "3s", *SMALL, cwd=cwd)
    assert p.returncode == 0, p.stderr
    runs = [d for d in os.listdir(cwd / "models") if not d.startswith(".")]
    assert len(runs) == 1
    return cwd, cwd / "models" / runs[0]
