"""python -m bench end to end with tiny budgets: runs, results files, resuming, bad arguments."""
import json
import os
import time
from dataclasses import replace

import pandas as pd
import pytest
import torch

import bench.run as bench
from conftest import assert_one_line_error, run_cli, run_main


def test_sigterm_stops_the_bench_without_a_row_for_the_cut_short_run(tmp_path):
    """SIGTERM during a cell: the run is saved as interrupted, but no row is written for it (a
    cut-short run is no result); bench exits 130 in one line, and the same command runs it again."""
    import signal
    import subprocess
    import sys

    from conftest import ROOT
    p, _ = run_cli("dataset.py", "--task", "bracket", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    proc = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--only", "quick-bracket-15s", "--archs", "gru",
                             "--budget", "1min"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    for line in proc.stdout:
        if " 1/10: step" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert "error: interrupted: 0 new rows are kept" in out
    assert not (tmp_path / "bench" / "results" / "runs.csv").exists() or pd.read_csv(tmp_path / "bench" / "results" / "runs.csv").empty
    [run] = os.listdir(tmp_path / "bench" / "runs")
    assert json.loads((tmp_path / "bench" / "runs" / run / "metrics.json").read_text())["interrupted"] is True


def test_quick_bench_writes_results_and_resumes(tmp_path):
    p, _ = run_cli("dataset.py", "--task", "bracket", cwd=tmp_path)  # the data, made outside the tiny budgets
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("bench", "--quick", "--only", "quick-bracket-15s", "--archs", "gru,gpt", "--budget", "3s", cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "0 of 2 runs done on cpu; 2 to go" in p.stdout
    results = tmp_path / "bench" / "results"
    df = pd.read_csv(results / "runs.csv")
    assert list(df["arch"]) == ["gru", "gpt"] and set(df["budget"]) == {"3s"}
    for col in ("test_em", "ood_em", "steps", "samples_per_s", "peak_share", "cpu_per_wall", "load_start",
                "matmul_gflops", "seed", "torch"):
        assert df[col].notna().all(), col
    assert (df["steps"] > 0).all() and (df["matmul_gflops"] > 0).all()
    assert ((0 <= df["test_em"]) & (df["test_em"] <= 1)).all()
    assert json.loads(df["config"][0])["batch_size"] == 64  # gru's default, recorded with the row
    g = json.loads(df["groups"][0])  # per-group exact match, test and OOD apart
    assert sorted(g["test"]["length"]) == ["01-10", "11-20", "21-30"]
    assert sorted(g["ood"]["length"]) == ["31-40", "41-50", "51-60"]
    report = (results / "README.md").read_text()
    assert "## quick-bracket-15s, trained for 3s" in report and "| gru" in report and "| gpt" in report
    assert os.path.getsize(results / "quick-bracket-15s-3s.png") > 1000, "a preset under --budget is drawn apart"
    assert "![quick-bracket-15s](quick-bracket-15s-3s.png)" in report
    assert not list(results.glob("accuracy_vs_budget*")), "one budget: no accuracy-versus-budget picture"
    for run in df["run"]:  # every run is a normal run folder, scored by evaluate.py
        assert (tmp_path / run / "metrics.json").exists()
        assert any(f.startswith("evaluation_summary") for f in os.listdir(tmp_path / run))

    p, _ = run_cli("bench", "--quick", "--only", "quick-bracket-15s", "--archs", "gru,gpt", "--budget", "3s", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "2 of 2 runs done on cpu; 0 to go" in p.stdout, "a finished cell is never run twice"
    assert len(pd.read_csv(results / "runs.csv")) == 2

    config = json.loads(df.loc[1, "config"])  # gpt's row as if made before its default batch size changed
    df.loc[1, "config"] = json.dumps({**config, "batch_size": config["batch_size"] * 2})
    df.to_csv(results / "runs.csv", index=False)
    p, _ = run_cli("bench", "--quick", "--only", "quick-bracket-15s", "--archs", "gru,gpt", "--budget", "3s", cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "1 of 2 runs done on cpu; 1 to go" in p.stdout and "1 of them ran before under settings or splits that have changed" in p.stdout
    df = pd.read_csv(results / "runs.csv")
    assert list(df["arch"]) == ["gru", "gpt", "gpt"], "the earlier row stays in runs.csv"
    report = (results / "README.md").read_text()
    assert "Not in this table, made under earlier settings or run again since (in runs.csv): `gpt` 1 run" in report
    assert "| gpt    |      1 |" in report, "the median is over the runs under the latest settings only"

    p, _ = run_cli("bench", "--quick", "--only", "quick-bracket-15s", "--archs", "gru", "--budget", "3s", "--again",
                   cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "0 of 1 runs done on cpu; 1 to go" in p.stdout, "--again runs a finished cell"
    assert list(pd.read_csv(results / "runs.csv")["arch"]) == ["gru", "gpt", "gpt", "gru"]
    assert "`gru` 1 run" in (results / "README.md").read_text(), "the first gru row is left out of the median"


def test_quick_chomsky_protocol_scores_token_accuracy_past_training(tmp_path):
    """`--quick --only quick-chomsky`: a task of each level, scored at lengths 41, 81 and 161 with
    exact match and token accuracy, reported in the paper's layout beside its Table 2; ber gets
    as many answer slots as the longest training answer needs (duplicate_string: 80 and <eos>)."""
    assert bench.planned(bench.QUICK["quick-chomsky-duplicate_string"], "ber")["n_slots"] == 81
    assert bench.planned(bench.QUICK["quick-chomsky-parity_check"], "ber")["n_slots"] == 2
    p, _ = run_cli("bench", "--quick", "--only", "quick-chomsky", "--archs", "stack", cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(tmp_path / "bench" / "results" / "runs.csv")
    assert sorted(df["preset"]) == ["quick-chomsky-duplicate_string", "quick-chomsky-parity_check",
                                    "quick-chomsky-stack_manipulation"]
    for curve in df["curve"]:
        c = json.loads(curve)
        assert sorted(map(int, c["em"])) == [41, 81, 161] and all(0 <= a <= 1 for a in c["acc"].values())
    report = (tmp_path / "bench" / "results" / "README.md").read_text()
    assert "## Study: quick-chomsky" in report and "| cs | duplicate_string |" in report and "paper: RNN" in report


def test_a_row_counts_only_under_the_settings_a_cell_would_train_with():
    four, addsub = bench.PRESETS["arith-four-10min"], bench.PRESETS["arith-addsub-10min"]
    plan = bench.planned(four, "tra")
    assert plan["d_model"] == 64 and plan["weight_decay"] == 0.1  # tra's defaults for x and /
    assert bench.same_settings(json.dumps(plan), plan, "tra")
    assert not bench.same_settings(json.dumps({**plan, "weight_decay": 0.0}), plan, "tra")
    assert not bench.same_settings(None, plan, "tra")  # a row that recorded no settings
    older = {k: v for k, v in plan.items() if k not in ("places", "digit_ids", "point_id")}
    assert bench.same_settings(json.dumps(older), plan, "tra"), "a setting added since counts as its default then"
    places = bench.planned(addsub, "gpt")  # gpt's + and - default: a digit place bias, which a row from before lacks
    assert places["place_bias"] == 2 and places["places"] is False
    assert not bench.same_settings(json.dumps({k: v for k, v in places.items() if k not in ("place_bias", "digit_ids", "point_id")}),
                                   places, "gpt")
    assert not bench.same_settings(json.dumps({**places, "places": True, "place_bias": 0}), places, "gpt")


def test_a_cell_is_pending_until_scored_on_every_split_its_preset_scores():
    """bracket-10min scores OOD2 (lengths 61..120): a row under today's settings without that score
    (made before the preset had it) leaves the cell to run; one with it, or a preset without OOD2, does not.
    So does a row without the accuracy curve every preset scores."""
    ten, one = bench.PRESETS["bracket-10min"], bench.PRESETS["bracket-1min"]
    assert ten.ood2 and not one.ood2 and ten.curve and one.curve
    curve = json.dumps({"axis": "length", "trained": 30, "em": {"1": [1.0, 3]}})

    def row(preset, ood2, config, curve=curve):
        return {"preset": preset, "arch": "lstm", "budget": bench.PRESETS[preset].budget, "seed": 0, "test_em": 1.0,
                "ood2_em": ood2, "config": json.dumps(config), "curve": curve}
    plan = bench.planned(ten, "lstm")
    presets = {"bracket-10min": replace(ten, seeds=[0]), "bracket-1min": replace(one, seeds=[0])}
    for ten_rows, ten_todo, stale in (([], True, 0), ([row("bracket-10min", None, plan)], True, 1),
                                      ([row("bracket-10min", 0.99, plan)], False, 0),
                                      ([row("bracket-10min", 0.99, {**plan, "lr": 1.0})], True, 1),
                                      ([row("bracket-10min", None, plan), row("bracket-10min", 0.99, plan)], False, 0),
                                      ([row("bracket-10min", 0.99, plan, curve=None)], True, 1)):
        df = pd.DataFrame([row("bracket-1min", None, plan), *ten_rows]).reindex(columns=bench.COLUMNS)
        cells, todo, n_stale = bench.pending(presets, ["lstm"], df)
        assert len(cells) == 2 and [c[0] for c in todo] == (["bracket-10min"] if ten_todo else []), ten_rows
        assert n_stale == stale


def test_a_cell_run_again_replaces_its_row_in_the_report():
    """A seed scored twice under the same settings (run again for a split its preset gained) counts
    once in the medians, by its latest row; rows under other settings stay out as before."""
    plan = {"d_model": 128, "lr": 0.0064}
    def row(seed, test, config):
        return {"preset": "arith-x", "arch": "gru", "budget": "10min", "seed": seed, "test_em": test, "config": json.dumps(config)}
    df = pd.DataFrame([row(0, 0.90, {**plan, "lr": 0.1}), row(0, 0.972, plan), row(0, 0.975, plan), row(1, 0.98, plan)])
    kept, rest = bench.latest_settings(df)
    assert list(kept["test_em"]) == [0.975, 0.98] and sorted(rest["test_em"]) == [0.90, 0.972]
    assert bench.summary_table(kept.reindex(columns=bench.COLUMNS))["test_em_median"].iloc[0] == pytest.approx(0.9775)


def test_bench_bad_arguments(tmp_path):
    bad = [["--only", "nope"], ["--archs", "rnn"], ["--quick", "--budget", "10minutes"], ["--quick", "--seeds", "0,x"]]
    if not torch.cuda.is_available():
        bad.append(["--quick", "--device", "cuda"])
    for i, args in enumerate(bad):
        p = run_cli("bench", *args, cwd=tmp_path)[0] if i == 0 else run_main("bench.run", *args, cwd=tmp_path)
        assert_one_line_error(p)
    assert not (tmp_path / "bench").exists()
    (tmp_path / "bench").write_text("")  # results that cannot be kept are not computed
    p = run_main("bench.run", "--quick", "--archs", "gru", cwd=tmp_path)
    assert_one_line_error(p)
    assert "cannot write in bench/results/" in p.stderr, p.stderr


def test_report_has_a_per_operation_table(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path))
    def row(arch, seed, add, mul):
        groups = {"test": {"op": {"+": add, "*": mul}, "digits": {"1x1": 1.0, "2x2": 0.5}},
                  "ood": {"op": {"+": 0.0, "*": 0.0}, "digits": {"3x3": 0.0}}}
        return {"preset": "arith-x", "arch": arch, "budget": "1min", "seed": seed, "test_em": (add + mul) / 2,
                "ood_em": 0.0, "steps": 10, "samples_per_s": 1.0, "params": 1, "peak_share": 0.1, "wall_time": 60,
                "train_time": 59, "val_time": 1, "cpu_per_wall": 2.0, "load_start": 1.0, "load_end": 1.0,
                "matmul_gflops": 100.0, "run": str(tmp_path / "gone"), "date": "", "torch": "",
                "config": json.dumps({"d_model": 64, "lr": 0.003}) if arch == "gru" else None,
                "groups": json.dumps(groups)}
    df = pd.DataFrame([row("gru", 0, 1.0, 0.25), row("gru", 1, 0.5, 0.75), row("gpt", 0, 1.0, 0.0)])
    table = bench.per_group(df, "op")
    assert table.loc["gru", "+"] == 0.75 and table.loc["gru", "*"] == 0.5 and table.loc["gpt", "*"] == 0.0
    assert bench.per_group(df, "length") is None
    steps = pd.DataFrame([{**row("gru", 0, 0.0, 0.0), "budget": "3000steps"}])  # the preset under --budget: reported apart
    bench.report(pd.concat([df, steps], ignore_index=True), {"arith-x": bench.Preset("arith", {}, "1min", [0, 1], "goal")})
    text = (tmp_path / "README.md").read_text()
    assert "## arith-x, trained for 3000steps" in text and "| gru | 0.00% | 0.00% |" in text
    assert "`gru` d_model=64, lr=0.003; `gpt` not recorded" in text
    assert "per operation" in text and "| gru | 75.00%  | 50.00% |" in text
    assert os.path.getsize(tmp_path / "arith-x.png") > 1000  # drawn from runs.csv alone: the run folders are gone


def test_a_preset_sets_split_sizes(tmp_path, monkeypatch):
    """arith-four-10min trains on 1,000,000 problems: a preset's sizes reach the run's data."""
    assert bench.PRESETS["arith-four-10min"].sizes == {"train_size": 1_000_000}
    monkeypatch.chdir(tmp_path)
    p = bench.Preset("arith", {"ops": "+-", "digits": 2}, "1s", [0], "tiny",
                     sizes={"train_size": 300, "val_size": 50, "test_size": 40, "ood_size": 40})
    row = bench.run_cell("tiny", p, "gpt", 0, threads=1)
    data = json.load(open(os.path.join(row["run"], "config.json")))["data"]
    assert data["train_size"] == 300 and data["test_size"] == 40
    folder = bench.D.DataSpec(**data).folder()
    assert sum(1 for _ in open(os.path.join(folder, "test.jsonl"))) == 40


def device_row(arch, seed, test, device, config, util=None):
    return {"preset": "bracket-1min", "arch": arch, "budget": "1min", "seed": seed, "test_em": test, "ood_em": test,
            "steps": 5000, "samples_per_s": 9000.0 if device == "cpu" else 90000.0, "peak_share": 0.1, "gpu_util": util,
            "cpu_per_wall": 1.0, "load_start": 1.0, "matmul_gflops": 200.0 if device == "cpu" else 50000.0,
            "device": device, "run": "gone", "config": json.dumps(config),
            "curve": json.dumps({"axis": "length", "trained": 30, "em": {"1": [1.0, 3], "40": [seed / 10, 100]}})}


def test_a_cell_runs_on_each_device_apart():
    """A row on the CPU does not stand for a run on a GPU (bench.py on a GPU machine used to find
    every cell done and run nothing), nor one GPU's for another's; rows from before the device
    column ran on the CPU."""
    one = replace(bench.PRESETS["bracket-1min"], seeds=[0])
    plan = bench.planned(one, "gpt")
    h200 = "cuda: NVIDIA H200"
    cpu = pd.DataFrame([device_row("gpt", 0, 0.99, "cpu", plan)]).reindex(columns=bench.COLUMNS)
    assert bench.pending({"bracket-1min": one}, ["gpt"], cpu, "cpu")[1] == []
    assert len(bench.pending({"bracket-1min": one}, ["gpt"], cpu, h200)[1]) == 1
    both = pd.concat([cpu, pd.DataFrame([device_row("gpt", 0, 0.999, h200, plan)])], ignore_index=True)
    assert bench.pending({"bracket-1min": one}, ["gpt"], both, h200)[1] == []
    assert len(bench.pending({"bracket-1min": one}, ["gpt"], both, "cuda: NVIDIA H100 80GB HBM3")[1]) == 1
    old = cpu.drop(columns=["device"])  # a runs.csv from before the column
    assert bench.pending({"bracket-1min": one}, ["gpt"], old, "cpu")[1] == []
    kept, rest = bench.latest_settings(both)
    assert len(kept) == 2 and rest.empty, "the same seed on two devices is two rows, neither replaces the other"


def test_report_shows_gpu_rows_beside_cpu_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path))
    plan = {"d_model": 64, "lr": 0.003}
    h200 = "cuda: NVIDIA H200"
    df = pd.DataFrame([device_row("gpt", 0, 0.99, "cpu", plan), device_row("gpt", 1, 0.98, "cpu", plan),
                       device_row("gpt", 0, 0.999, h200, {**plan, "batch_size": 512}, util=0.62),
                       device_row("gpt", 1, 1.0, h200, {**plan, "batch_size": 512}, util=0.58)])
    table = bench.summary_table(bench.latest_settings(df)[0].reindex(columns=bench.COLUMNS))
    assert list(table["device"]) == ["cpu", h200] and list(table["runs"]) == [2, 2]
    assert table["test_em_median"].tolist() == pytest.approx([0.985, 0.9995]) and table["gpu_util"].iloc[1] == pytest.approx(0.60)
    bench.report(df, {})
    text = (tmp_path / "README.md").read_text()
    assert "200 GFLOP/s on the CPU; 50,000 GFLOP/s on NVIDIA H200" in text
    header = next(line for line in text.splitlines() if line.startswith("| arch"))
    rows = [line for line in text.splitlines() if line.startswith("| gpt")]
    cells = {r.split("|")[1].strip(): dict(zip((c.strip() for c in header.split("|")), (c.strip() for c in r.split("|"))))
             for r in rows}
    assert list(cells) == ["gpt", "gpt (NVIDIA H200)"]
    assert cells["gpt"]["test_em_median"] == "98.50%" and cells["gpt"]["gpu_util"] == "-", "the CPU row has no GPU utilisation"
    assert cells["gpt (NVIDIA H200)"]["test_em_median"] == "99.95%" and cells["gpt (NVIDIA H200)"]["gpu_util"] == "60.00%"
    assert cells["gpt (NVIDIA H200)"]["samples_per_s"] == "90000"
    assert "`gpt (NVIDIA H200)` d_model=64, lr=0.003, batch_size=512" in text


def test_accuracy_versus_budget_is_drawn_per_problem_set(tmp_path, monkeypatch):
    """A problem set (task, options, sizes) trained by presets at two time budgets or more gets
    accuracy_vs_budget-<set>.png, linked from the report; step budgets and studies stay out."""
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path))
    plan = {"d_model": 64}
    rows = [{**device_row("gpt", 0, 0.9, "cpu", plan), "preset": "bracket-1min", "budget": "1min"},
            {**device_row("gpt", 0, 1.0, "cpu", plan), "preset": "bracket-10min", "budget": "10min"},
            {**device_row("gpt", 0, 1.0, "cpu", plan), "preset": "pos-bracket-fire", "budget": "8000steps"},
            {**device_row("gpt", 0, 0.5, "cpu", plan), "preset": "arith-addsub-10min", "budget": "10min"}]
    assert bench.budget_plots(pd.DataFrame(rows).assign(series="gpt"), bench.PRESETS) == ["accuracy_vs_budget-bracket.png"]
    assert os.path.getsize(tmp_path / "accuracy_vs_budget-bracket.png") > 1000
    bench.report(pd.DataFrame(rows), {})
    assert "![accuracy versus budget, bracket](accuracy_vs_budget-bracket.png)" in (tmp_path / "README.md").read_text()


def test_gpu_use_averages_the_readings_of_the_training_loop():
    readings = iter([10, 50, 70, 90] + [100] * 1000)
    with bench.GpuUse("cpu", read=lambda: next(readings), every=0.01) as use:
        while len(use.samples) < 4:
            time.sleep(0.01)
    (t0, _), (t1, _), (t2, _), (t3, _) = use.samples[:4]
    assert use.mean(t1, t2) == pytest.approx(0.60) and use.mean(t0, t3) == pytest.approx(0.55)
    assert use.mean(t3 + 100, t3 + 200) is None
    with bench.GpuUse("cpu") as cpu:  # no GPU: nothing is read
        time.sleep(0.05)
    assert cpu.samples == [] and cpu.mean(0, time.time()) is None

    def broken():
        raise ModuleNotFoundError("pynvml")
    with bench.GpuUse("cpu", read=broken, every=0.01) as none:
        time.sleep(0.1)
    assert none.mean(0, time.time()) is None, "no NVML: the column stays empty, the run goes on"


def test_a_preset_under_another_budget_is_reported_apart(tmp_path, monkeypatch):
    """Rows of a preset run under --budget get their own section, pictures and no place in the
    preset's study table (the study compares every preset at its own budget)."""
    monkeypatch.setattr(bench, "RESULTS", str(tmp_path))
    drawn = {}
    monkeypatch.setattr(bench.scoring, "plot_curves",
                        lambda curves, label, trained, path, title: drawn.update({os.path.basename(path): curves}))
    study = {"pos-x": bench.Preset("bracket", {}, "8000steps", [0], "goal", study="s"),
             "pos-y": bench.Preset("bracket", {}, "8000steps", [0], "goal", study="s")}
    def row(preset, budget, em50):
        curve = {"axis": "length", "trained": 30, "em": {"1": [1.0, 3], "40": [1.0, 100], "50": [em50, 100]}}
        return {**device_row("tra", 0, 1.0, "cpu", {}), "preset": preset, "budget": budget, "curve": json.dumps(curve)}
    df = pd.DataFrame([row("pos-x", "8000steps", 0.5), row("pos-y", "8000steps", 1.0), row("pos-x", "10min", 1.0)])
    bench.report(df, study)
    text = (tmp_path / "README.md").read_text()
    assert text.index("## pos-x\n") < text.index("## pos-x, trained for 10min") < text.index("## pos-y\n")
    assert "![pos-x curve](pos-x-curve.png)" in text and "![pos-x curve](pos-x-10min-curve.png)" in text
    assert drawn["pos-x-curve.png"]["tra (1 seed)"]["exact_match"].tolist() == [1.0, 1.0, 0.5]
    assert drawn["pos-x-10min-curve.png"]["tra (1 seed)"]["exact_match"].tolist() == [1.0, 1.0, 1.0]
    table = text.split("## Study: s", 1)[1]
    cells = [c.strip() for c in next(line for line in table.splitlines() if line.startswith("| tra")).split("|")[2:4]]
    assert cells == ["40 / 40 / -", "50 / 50 / -"], "pos-x at 8000 steps, not its 10min row"


def test_chomsky_summary_counts_solved_tasks_per_level_beside_the_paper(tmp_path):
    """The README's suite table counts, per architecture and level, the tasks whose paper score
    (token accuracy over the lengths, best seed) reaches 90, beside the paper's count on the same
    tasks where its copy shows them; the level's curve averages token accuracy over its tasks."""
    from bench import chomsky

    def row(task, arch, seed, acc):
        curve = {"axis": "length", "trained": 40, "em": {"41": [acc, 10], "51": [acc / 2, 10]}, "acc": {"41": acc, "51": acc}}
        return {"preset": f"chomsky-{task}", "arch": arch, "budget": "1min", "seed": seed, "curve": json.dumps(curve)}

    presets = {n: p for n, p in bench.PRESETS.items() if p.study == "chomsky"}
    rows = pd.DataFrame([row("parity_check", "gru", 0, 0.5), row("parity_check", "gru", 1, 0.95),  # the best seed counts
                         row("even_pairs", "gru", 0, 0.6), row("reverse_string", "stack", 0, 1.0)])
    lines = chomsky.summary(rows, presets, bench.CHOMSKY_LEVELS)
    assert lines[0] == "| level | gru (RNN) | lstm (LSTM) | stack (Stack-RNN) | tape (Tape-RNN) | tra (Transformer) | " \
                       "ber (Transformer) | gpt (Transformer) |"
    # gru: parity_check solved of two run; the paper's RNN solves parity_check, its even_pairs cell is unseen
    assert lines[2] == "| regular | 1/2 (1/1) | - | - | - | - | - | - |"
    assert lines[3] == "| dcf | - | - | 1/1 (1/1) | - | - | - | - |" and lines[4].startswith("| cs | - |")
    assert chomsky.level_curves(rows, presets, bench.CHOMSKY_LEVELS, str(tmp_path)) == ["chomsky-regular-curve.png",
                                                                                         "chomsky-dcf-curve.png"]
    assert (tmp_path / "chomsky-regular-curve.png").stat().st_size > 0 and not (tmp_path / "chomsky-cs-curve.png").exists()
    assert chomsky.summary(rows.iloc[:0], presets, bench.CHOMSKY_LEVELS) == []
