"""README "Adding a task", proved: a task is one file in tasks/. The test copies the repository's
source to a folder of its own, adds one file there (PARITY below, written from the README alone:
is the number of 1s in a bit string odd?) and runs the new task through every script, as a user
would: dataset.py, train.py, evaluate.py (with --curve and another OOD range), predict.py,
serve.py, hyper.py, export.py and python -m bench --task. Nothing else in the copy is touched."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

PARITY = '''"""Parity: is the number of 1s in a bit string odd? input `0110`, target `0` (even) or `1` (odd)."""
import random
from dataclasses import dataclass

import torch

from errors import BadInput, DataError
from tasks.common import Axis, Example, Task, option


@dataclass
class ParityConfig:
    bits: int = option(8, "longest bit string")
    ood_bits: int = option(12, "longest bit string of the OOD split")


class Parity(Task):
    name = "parity"
    Config = ParityConfig
    breakdowns = {"length": 4}
    extras = {"ones": "ones counted"}

    def __init__(self, cfg):
        if not 1 <= cfg.bits < cfg.ood_bits:
            raise DataError("parity needs 1 <= bits < ood_bits")
        super().__init__(cfg)

    def symbols(self):
        return ["0", "1"]

    def axis(self):
        return Axis("length", "bits", self.cfg.bits, 64)

    def sample(self, gen, n, ood=False):
        return self.strings(gen, n, *((self.cfg.bits + 1, self.cfg.ood_bits) if ood else (1, self.cfg.bits)))

    def sample_at(self, gen, n, value):
        return self.strings(gen, n, value, value)

    def strings(self, gen, n, lo, hi):
        rng = random.Random(int(torch.randint(2**62, (1,), generator=gen)))
        texts = ["".join(rng.choices("01", k=rng.randint(lo, hi))) for _ in range(n)]
        return [Example(t, str(t.count("1") % 2), {"length": len(t)}) for t in texts]

    def max_input_len(self):
        return self.cfg.ood_bits

    def max_target_len(self):
        return 1

    def check(self, text):
        if not text or set(text) - {"0", "1"}:
            raise BadInput(f"{text!r} is not a string of 0s and 1s")
        return [] if len(text) <= self.cfg.bits else [f"{len(text)} bits; training had at most {self.cfg.bits}"]

    def present(self, text, output):
        return {"answer": output, "ones": str(text.count("1"))}
'''

SIZES = ["--train-size", "2000", "--val-size", "40", "--test-size", "40", "--ood-size", "60"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the repository's source with tasks/parity.py added, and a working folder."""
    copy = tmp_path_factory.mktemp("repo") / "harness"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "models", "data", "optuna_studies", "runs",
                                                               "results", "gpu_check", "node_modules", "__pycache__", ".*cache"))
    (copy / "tasks" / "parity.py").write_text(PARITY)
    return copy, tmp_path_factory.mktemp("work")


def run(repo, *args, timeout=240):
    copy, work = repo
    command = [os.path.join(copy, args[0])] if args[0].endswith(".py") else ["-m", args[0]]
    p = subprocess.run([sys.executable, *command, *args[1:]], cwd=work, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(copy), "COLUMNS": "200"})
    assert p.returncode == 0, f"{args}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


@pytest.fixture(scope="module")
def trained(repo):
    out = run(repo, "dataset.py", "--task", "parity", *SIZES)
    assert "parity" in out and "problem space holds" in out  # 510 strings of up to 8 bits: the small splits take them all
    out = run(repo, "train.py", "gru", "150steps", "--task", "parity", "--set", "d_model=32", *SIZES)
    [run_dir] = os.listdir(repo[1] / "models")
    assert run_dir.startswith("gru_parity_") and "saved" in out
    return repo[1] / "models" / run_dir


def test_it_trains_and_evaluate_scores_it(repo, trained):
    out = run(repo, "evaluate.py", "--latest")
    assert "test by length" in out and out.index("01-04") < out.index("05-08"), "groups of 4 bits, in order"
    summary = json.load(open(trained / "evaluation_summary.json"))
    assert summary["task"] == "parity" and list(summary["ood"]["breakdown"]["length"]) == ["09-12"]
    out = run(repo, "evaluate.py", "--latest", "--curve", "--per-value", "3")
    assert "exact match by bits" in out and (trained / "by_length.csv").is_file()
    out = run(repo, "evaluate.py", "--latest", "--ood-bits", "20")
    assert "ood bits 20" in out


def test_predict_and_serve_show_its_extras(repo, trained):
    out = run(repo, "predict.py", "--latest", "0110", "10110")
    assert "ones counted: 2" in out and "ones counted: 3" in out
    answer = json.loads(run(repo, "predict.py", "--latest", "--json", "0110").splitlines()[0])
    assert answer["problem"] == "0110" and answer["ones"] == "2" and answer["answer"] in ("0", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    copy, work = repo
    server = subprocess.Popen([sys.executable, os.path.join(copy, "serve.py"), "--latest", "--port", str(port)], cwd=work,
                              env={**os.environ, "PYTHONPATH": str(copy)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):  # a poll while the server starts, not a time limit
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.2)
        assert "ones counted" in page
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps({"inputs": ["0110", "111"]}).encode())
        body = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert body["ones"] == ["2", "3"] and len(body["outputs"]) == 2
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_hyper_tunes_it(repo, trained):
    out = run(repo, "hyper.py", "--arch", "gru", "--task", "parity", "--time", "1min", "--trial-budget", "40steps",
              "--trials", "2", *SIZES, timeout=300)
    assert "study hyper_gru_parity_1 created" in out and "best trial" in out


def test_export_carries_it_out(repo, trained):
    out = run(repo, "export.py", "--latest")
    assert "the same greedy answers as PyTorch" in out and (trained / "model.onnx").is_file()
    out = run(repo, "predict.py", "--latest", "--runtime", "onnx", "0110")
    assert "ones counted: 2" in out


def test_bench_runs_it(repo, trained):
    out = run(repo, "bench", "--task", "parity", "--archs", "gru", "--budget", "40steps", *SIZES, timeout=300)
    assert "0 of 1 runs done" in out
    results = repo[1] / "bench" / "results"
    rows = (results / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("task-parity-")
    assert "## task-parity-" in (results / "README.md").read_text()
