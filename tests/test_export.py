"""export.py: ONNX export with parity for every architecture, int8, the runtimes, and bad input."""
import json
import os

import pytest

import archs
import dataset as D
import evaluate
import export
from conftest import assert_one_line_error, run_cli
from runs import RunError, load_run
from train import TrainConfig, train

TINY = {"gru": {"d_model": 32}, "lstm": {"d_model": 32}, "tra": {"d_model": 32}, "ber": {"d_model": 32, "n_layer": 1},
        "gpt": {"d_model": 32, "n_layer": 1, "places": True}}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    runs = {}
    for arch in archs.ARCHS:
        task = ("arith", {"ops": "+-", "format": "reversed"}) if arch in ("gpt", "tra") else ("bracket", None)
        m = train(TrainConfig(arch=arch, budget="2s", data=D.DataSpec(task[0], task[1], 2000, 100, 150, 100),
                              model=dict(TINY[arch]), models_dir=str(root / "models"), data_dir=str(root / "data")), quiet=True)
        runs[arch] = m["run"]
    return root, runs


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_export_answers_like_pytorch(tiny_runs, arch):
    root, runs = tiny_runs
    info = export.export(runs[arch], int8=True, log=lambda *_: None)
    assert info["parity"]["same_answers"] == info["parity"]["problems"] == 100
    files = set(os.listdir(runs[arch]))
    assert {"model.onnx", "model.int8.onnx", "codec.json", "export.json"} <= files and not any(f.startswith(".tmp-") for f in files)
    assert json.load(open(os.path.join(runs[arch], "export.json")))["layout"] == load_run(runs[arch]).model.layout
    assert info["sizes"]["model.int8.onnx"] <= info["sizes"]["model.onnx"]
    torch_run, onnx_run = load_run(runs[arch]), load_run(runs[arch], runtime="onnx")
    folder = D.prepare(D.DataSpec(**torch_run.config["data"]), torch_run.config["data_dir"])
    for split in ("test", "ood"):  # the same greedy answers, dynamic batch and length included
        exs = D.load_split(folder, split)
        assert evaluate.predict(torch_run.model, torch_run.codec, exs, torch_run.task) == \
            evaluate.predict(onnx_run.model, onnx_run.codec, exs, onnx_run.task)
    int8 = load_run(runs[arch], runtime="int8")
    assert 0 <= evaluate.exact_match(int8.model, int8.codec, D.load_split(folder, "test"), int8.task) <= 1


def test_runtimes_from_the_command_line(tiny_runs):
    root, runs = tiny_runs
    run = runs["gru"]
    export.export(run, log=lambda *_: None)
    p, _ = run_cli("evaluate.py", run, "--runtime", "onnx", "--device", "cpu", cwd=root)
    assert p.returncode == 0 and "onnx runtime" in p.stdout, p.stderr
    p, _ = run_cli("predict.py", run, "--runtime", "onnx", "--json", cwd=root, input="(((\n")
    assert p.returncode == 0 and json.loads(p.stdout)["problem"] == "(((", p.stderr


def test_runtimes_bench_measures_all_three(tiny_runs, monkeypatch, tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("runtimes", os.path.join(os.path.dirname(export.__file__), "bench", "runtimes.py"))
    R = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(R)
    root, runs = tiny_runs
    monkeypatch.setattr(R, "RESULTS", str(tmp_path / "runtimes.csv"))
    assert R.main([runs["tra"], "--single", "5", "--commit"]) == 0
    import pandas as pd
    df = pd.read_csv(tmp_path / "runtimes.csv")
    assert list(df["runtime"]) == ["torch", "onnx", "int8"] and (df["latency_ms_p50"] > 0).all()
    assert df.loc[1, "test_same_as_torch"] == 1.0 and df.loc[1, "test_em"] == df.loc[0, "test_em"]
    assert df.loc[2, "file_kib"] < df.loc[1, "file_kib"]


def test_export_bad_input(tmp_path, monkeypatch):
    root = tmp_path
    run = train(TrainConfig(arch="lstm", budget="1s", data=D.DataSpec("bracket", None, 2000, 100, 150, 100),
                            model=dict(TINY["lstm"]), models_dir=str(root / "models"), data_dir=str(root / "data")), quiet=True)["run"]
    p, _ = run_cli("evaluate.py", run, "--runtime", "int8", cwd=root)  # never exported
    assert_one_line_error(p)
    assert "export it first with: python export.py" in p.stderr and "--int8" in p.stderr
    p, _ = run_cli("export.py", "models/missing", cwd=root)
    assert_one_line_error(p)
    export.export(run, log=lambda *_: None)
    with open(os.path.join(run, "model.onnx"), "r+b") as f:  # damage it
        f.truncate(1000)
    p, _ = run_cli("predict.py", run, "--runtime", "onnx", "(((", cwd=root)
    assert_one_line_error(p)
    assert "model.onnx is not a usable ONNX model" in p.stderr
    os.unlink(os.path.join(run, "model.onnx"))
    os.unlink(os.path.join(run, "export.json"))
    monkeypatch.setattr(export, "parity", lambda run, model, split="val": (100, 99, "'((': PyTorch '))', onnxruntime ')'"))
    with pytest.raises(RunError, match="disagrees with PyTorch on 1 of 100 validation problems, first '\\(\\('"):
        export.export(run, log=lambda *_: None)
    left = os.listdir(run)
    assert "model.onnx" not in left and "export.json" not in left and not any(f.startswith(".tmp-") for f in left)
