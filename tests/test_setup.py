"""The container and the install steps: the Dockerfile lints clean and installs what CI installs."""
import os
import re
import shutil
import subprocess

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
