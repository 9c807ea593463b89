"""Every script on CUDA (issue 9): skipped where there is no GPU (CI), run on a GPU machine with
`bash scripts/test.sh -k cuda`. Each path the CPU tests cover also has to work with --device cuda
and --device auto: train, --resume, --init-from with --lora, evaluate (on the GPU), predict,
export, serve.py, and a tiny hyper.py study."""
import json
import os
import urllib.request

import pytest
import torch

import archs
from conftest import SMALL, run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = ["--set", "d_model=32"]


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_train_resume_finetune_evaluate_predict_export_on_cuda(arch, tmp_path):
    p, _ = run_cli("train.py", arch, "3s", *SMALL, *TINY, "--device", "cuda", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [run] = [tmp_path / "models" / d for d in os.listdir(tmp_path / "models") if not d.startswith(".")]
    assert json.load(open(run / "metrics.json"))["device"].startswith("cuda")
    p, _ = run_cli("train.py", arch, "2s", "--resume", str(run), "--device", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("train.py", arch, "2s", "--init-from", str(run), "--lora", "4", *SMALL, "--device", "cuda", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("evaluate.py", str(run), "--device", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("predict.py", str(run), "(((", "--device", "cuda", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("export.py", str(run), cwd=tmp_path, timeout=300)  # exports from the CPU copy of a CUDA-trained run
    assert p.returncode == 0, p.stderr


def test_serve_answers_from_the_gpu(tmp_path):
    """serve.py --device cuda (and auto) loads the run onto the GPU and answers over HTTP."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from test_serve import free_port, start_server
    p, _ = run_cli("train.py", "gpt", "3s", *SMALL, *TINY, "--device", "cuda", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [run] = [tmp_path / "models" / d for d in os.listdir(tmp_path / "models") if not d.startswith(".")]
    for device in ("cuda", "auto"):
        port = free_port()
        proc = start_server(tmp_path, run, port, "--device", device)
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps({"inputs": ["(((", "【{"]}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                body = json.load(r)
            assert len(body["outputs"]) == 2 and all(0 < q <= 1 for q in body["probabilities"])
            assert " on cuda" in proc.stdout.readline(), "the model is on the GPU"
        finally:
            proc.kill()
            proc.wait()


def test_hyper_study_on_cuda(tmp_path):
    """hyper.py's trials train on the device train.py picks by default (auto: the GPU)."""
    p, _ = run_cli("hyper.py", "--arch", "gpt", "--time", "40s", "--trial-budget", "5s", "--workers", "2", *SMALL,
                   "--storage", f"sqlite:///{tmp_path}/s.db", cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "2 worker(s) on GPU(s)" in p.stdout, p.stdout  # each worker pinned to a GPU
    trials = tmp_path / "optuna_studies"
    metrics = [json.load(open(os.path.join(d, "metrics.json"))) for d, _, files in os.walk(trials) if "metrics.json" in files]
    assert metrics and all(m["device"].startswith("cuda") for m in metrics)
