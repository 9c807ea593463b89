"""bench.py end to end with tiny budgets: runs, results files, resuming, bad arguments."""
import os

import pandas as pd

from conftest import assert_one_line_error, run_cli


def test_quick_bench_writes_results_and_resumes(tmp_path):
    p, _ = run_cli("dataset.py", "--task", "bracket", cwd=tmp_path)  # the data, made outside the tiny budgets
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("bench.py", "--quick", "--archs", "gru,gpt", "--budget", "3s", cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "0 of 2 runs done; 2 to go" in p.stdout
    results = tmp_path / "bench" / "results"
    df = pd.read_csv(results / "runs.csv")
    assert list(df["arch"]) == ["gru", "gpt"] and set(df["budget"]) == {"3s"}
    for col in ("test_em", "ood_em", "steps", "samples_per_s", "peak_share", "cpu_per_wall", "load_start",
                "matmul_gflops", "seed", "torch"):
        assert df[col].notna().all(), col
    assert (df["steps"] > 0).all() and (df["matmul_gflops"] > 0).all()
    assert ((0 <= df["test_em"]) & (df["test_em"] <= 1)).all()
    report = (results / "README.md").read_text()
    assert "## quick-bracket-15s" in report and "| gru" in report and "| gpt" in report
    assert os.path.getsize(results / "quick-bracket-15s.png") > 1000
    assert os.path.getsize(results / "accuracy_vs_budget.png") > 1000
    for run in df["run"]:  # every run is a normal run folder, scored by evaluate.py
        assert (tmp_path / run / "metrics.json").exists()
        assert any(f.startswith("evaluation_summary") for f in os.listdir(tmp_path / run))

    p, _ = run_cli("bench.py", "--quick", "--archs", "gru,gpt", "--budget", "3s", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "2 of 2 runs done; 0 to go" in p.stdout, "a finished cell is never run twice"
    assert len(pd.read_csv(results / "runs.csv")) == 2


def test_bench_bad_arguments(tmp_path):
    for args in (["--only", "nope"], ["--archs", "rnn"], ["--quick", "--budget", "10minutes"]):
        p, _ = run_cli("bench.py", *args, cwd=tmp_path)
        assert_one_line_error(p)
    assert not (tmp_path / "bench").exists()
