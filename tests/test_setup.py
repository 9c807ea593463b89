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
    """The image installs the files the virtual environment installs, torch from its CPU index, and
    takes pip's source settings as build arguments (tests/test_docker.py builds and runs it)."""
    docker = open(os.path.join(ROOT, "Dockerfile")).read()
    serve = open(os.path.join(ROOT, "requirements-serve.txt")).read()
    venv = open(os.path.join(ROOT, "scripts", "venv.sh")).read()
    assert re.search(r"^torch==2\.13\.0$", serve, re.M), "torch pinned exactly"
    assert "-r requirements-serve.txt" in open(os.path.join(ROOT, "requirements.txt")).read()
    assert "pip install -r requirements.txt" in docker and "pip install -r requirements-serve.txt" in docker
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in docker, "the image takes the CPU wheel"
    for arg in ("PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        assert docker.count(f"ARG {arg}\n") == 2, f"{arg} reaches both stages that run pip"
    assert "-r \"$req\"" in venv and "requirements-dev.txt" in open(os.path.join(ROOT, "scripts", "test.sh")).read()
    assert "-r requirements.txt" in open(os.path.join(ROOT, "requirements-dev.txt")).read()
    assert len(re.findall(r"^USER 1000:1000$", docker, re.M)) == 2, "neither target runs as root"
    assert "HEALTHCHECK" in docker and "EXPOSE 8000" in docker
    assert "bash scripts/test.sh" in open(os.path.join(ROOT, ".ci", "run")).read()
    assert "docker-env.sh" in open(os.path.join(ROOT, ".ci", "run")).read(), "CI has a Docker daemon"


def test_dockerignore_keeps_caches_and_outputs_out_at_any_depth():
    ignored = open(os.path.join(ROOT, ".dockerignore")).read().split()
    for pattern in ("**/__pycache__", "**/.pytest_cache", ".venv", ".git", "models", "data", "optuna_studies",
                    "bench/runs", "gpu_check"):
        assert pattern in ignored


def test_healthcheck_finds_serve_and_its_port():
    """scripts/healthcheck.py (the image's HEALTHCHECK) asks serve.py on the port its command line
    gives, and reports any other container healthy."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from healthcheck import serve_address
    assert serve_address(["python", "train.py", "gru", "1min"]) is None
    assert serve_address(["python", "serve.py", "--latest", "--host", "0.0.0.0"]) == ("127.0.0.1", 8000)
    assert serve_address(["python", "serve.py", "models/x", "--port=9001"]) == ("127.0.0.1", 9001)
    assert serve_address(["python", "/app/serve.py", "--port", "8080", "--host", "10.0.0.5"]) == ("10.0.0.5", 8080)


def test_gpu_check_says_in_one_line_where_there_is_no_gpu(tmp_path):
    """scripts/gpu_check.sh (issue 9's GPU rows and CUDA tests in one command) needs a CUDA GPU:
    without one it stops at once, before anything is trained or written."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: scripts/gpu_check.sh runs for real here")
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), str(tmp_path / "out")], capture_output=True,
                       text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=60)
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0 and "sees a CUDA GPU" in p.stderr, p.stderr
    assert os.listdir(tmp_path / "out") == []
