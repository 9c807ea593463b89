"""The container and the install steps: the Dockerfile lints clean and installs what CI installs."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or os.path.join(os.path.dirname(os.sys.executable), "hadolint")
    p = subprocess.run([hadolint, "--failure-threshold", "info", os.path.join(ROOT, "Dockerfile")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_dockerfile_installs_the_same_requirements_as_ci():
    docker = open(os.path.join(ROOT, "Dockerfile")).read()
    req = open(os.path.join(ROOT, "requirements.txt")).read()
    venv = open(os.path.join(ROOT, "scripts", "venv.sh")).read()
    assert re.search(r"^torch==2\.13\.0$", req, re.M), "torch pinned exactly"
    assert "pip install --no-cache-dir -r requirements.txt" in docker and "COPY requirements.txt" in docker
    assert "torch==2.13.0" in docker and "whl/cpu" in docker, "the image takes the CPU wheel"
    assert "-r \"$req\"" in venv and "requirements-dev.txt" in open(os.path.join(ROOT, "scripts", "test.sh")).read()
    assert "-r requirements.txt" in open(os.path.join(ROOT, "requirements-dev.txt")).read()
    assert re.search(r"^USER \d+", docker, re.M), "the image does not run as root"
    assert 'VOLUME ["/app/models", "/app/optuna_studies"]' in docker and "EXPOSE 8000" in docker
    assert "python serve.py --latest --host 0.0.0.0" in docker, "the image says how to serve a run"
    assert "bash scripts/test.sh" in open(os.path.join(ROOT, ".ci", "run")).read()


def test_gpu_check_says_in_one_line_where_there_is_no_gpu(tmp_path):
    """scripts/gpu_check.sh (issue 9's GPU rows and CUDA tests in one command) needs a CUDA GPU:
    without one it stops at once, before anything is trained or written."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: scripts/gpu_check.sh runs for real here")
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), str(tmp_path / "out")], capture_output=True,
                       text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=60)
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0 and "sees a CUDA GPU" in p.stderr, p.stderr
    assert os.listdir(tmp_path / "out") == []
