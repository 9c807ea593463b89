"""evaluate.py: honest scoring (untrained ~0%, oracle 100%), files never overwritten, errors."""
import json
import os
import re
import shutil
from fractions import Fraction

import pandas as pd
import pytest
import torch

import archs
import dataset as D
import infer
import scoring
from codec import EOS
from conftest import assert_one_line_error, run_cli, run_main
from tasks import Example, codec_of, make_task
from tasks.arith import num

OPEN = {"(": ")", "[": "]", "{": "}", "【": "】"}


class Oracle(torch.nn.Module):
    """A decoder-layout model that solves each prompt from its input tokens alone (it never sees
    the answer tensor) and says so with one-hot logits, one answer token per step."""
    layout = "decoder"

    def __init__(self, task, codec):
        super().__init__()
        self.task, self.codec = task, codec

    def solve(self, text):
        if self.task.name == "bracket":
            stack = []
            for c in text:
                stack.append(c) if c in OPEN else stack.pop()
            return "".join(OPEN[c] for c in reversed(stack))
        a, op, b = re.fullmatch(r"(-?[\d.]+)([-+*/])\(?(-?[\d.]+)\)?", text).groups()
        a, b = Fraction(a), Fraction(b)
        v = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b
        return num(int(v * 100), 2)

    def logits(self, answers, t, width):
        out = torch.full((len(answers), width, len(self.codec)), -30.0)
        for i, ids in enumerate(answers):
            out[i, :, ids[min(t, len(ids) - 1)]] = 0.0
        return out

    def step(self, tokens, state=None):
        if state is None:
            answers = [self.codec.encode(self.solve(self.codec.decode(row[1:]))) + [EOS] for row in tokens.tolist()]
            return self.logits(answers, 0, tokens.shape[1]), (answers, 0)
        answers, t = state
        return self.logits(answers, t + 1, tokens.shape[1]), (answers, t + 1)


@pytest.mark.parametrize("task_name,options", [("bracket", None), ("arith", {"negatives": True, "decimals": True})])
def test_oracle_scores_100_and_untrained_scores_near_0(tmp_path, task_name, options):
    spec = D.DataSpec(task_name, options, 1000, 100, 2000, 200)
    folder = D.prepare(spec, tmp_path)
    task = make_task(task_name, options)
    codec = codec_of(task)
    test = D.load_split(folder, "test")
    assert infer.exact_match(Oracle(task, codec), codec, test, task) == 1.0
    texts, probs = infer.answers(Oracle(task, codec), codec, [e.input for e in test[:50]], 20)
    assert texts == [e.target for e in test[:50]] and all(p > 0.9 for p in probs)
    torch.manual_seed(0)
    for arch in archs.ARCHS:
        settings = {"vocab_size": len(codec), **({"n_slots": task.max_target_len() + 1} if arch == "ber" else {})}
        model, _ = archs.build(arch, settings)
        em = infer.exact_match(model, codec, test, task)
        assert em <= 0.02 + scoring.baselines(test, test)["empty answer"], (arch, em)


def test_metrics():
    bracket = make_task("bracket")
    df = scoring.per_example([Example("((", "))", {}), Example("(", ")", {})], ["))", ")]"], codec_of(bracket), bracket)
    assert df["correct"].tolist() == [True, False]
    assert df["token_acc"].tolist() == [1.0, 0.5] and df["edit_dist"].tolist() == [0.0, 0.5]
    assert scoring.edit_distance(list("kitten"), list("sitting")) == 3
    scratch = make_task("arith", {"format": "scratch"})  # exact match scores the result after the scratch pad
    df = scoring.per_example([Example("47*23", "141+049=1801", {})] * 3, ["141+049=1801", "999=1801", "141+049=1800"],
                              codec_of(scratch), scratch)
    assert df["correct"].tolist() == [True, True, False] and df["token_acc"].tolist()[0] == 1.0


def test_breakdown_groups_are_in_numeric_order():
    """Lengths 61..120 by tens read 61-70 ... 111-120 (sorted as text, 101-110 came first);
    operand digits 2x1 before 10x1."""
    from tasks.common import group_order
    df = pd.DataFrame({"length": [65, 105, 118, 99], "depth": [1, 10, 2, 1], "correct": [True, False, True, True]})
    by = scoring.breakdown(df, make_task("bracket"))
    assert list(by["length"]) == ["61-70", "91-100", "101-110", "111-120"] and list(by["depth"]) == ["1", "2", "10"]
    assert sorted(["10x1", "2x1", "2x10", "+"], key=group_order) == ["2x1", "2x10", "10x1", "+"]


def test_evaluate_cli_latest_and_all(trained_run):
    cwd, run = trained_run
    p, _ = run_cli("evaluate.py", "--latest", cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert "exact match" in p.stdout and "baseline" in p.stdout and "test by depth" in p.stdout
    first = (run / "evaluation_result.txt").read_text()
    assert first.startswith("Problem 1 ") and "Expected:" in first
    summary = json.load(open(run / "evaluation_summary.json"))
    assert summary["test"]["n"] == 200 and "ood" in summary and "length" in summary["test"]["breakdown"]
    p, _ = run_cli("evaluate.py", str(run), cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert (run / "evaluation_result.txt").read_text() == first, "an earlier evaluation is never overwritten"
    assert (run / "evaluation_result.2.txt").exists() and (run / "evaluation_summary.2.json").exists()
    p, _ = run_cli("evaluate.py", "--all", cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert (cwd / "models" / "leaderboard.csv").exists() and "| arch" in (cwd / "models" / "leaderboard.md").read_text()


def test_evaluate_errors(trained_run, tmp_path):
    cwd, run = trained_run
    p, _ = run_cli("evaluate.py", "models/missing", cwd=cwd)
    assert_one_line_error(p)
    p = run_main("evaluate.py", cwd=cwd)  # no terminal, no argument
    assert p.returncode != 0 and "usage:" in p.stderr
    for damage in ("config.json", "model.safetensors", "metrics.json"):
        broken = tmp_path / damage
        shutil.copytree(run, broken)
        (broken / damage).write_bytes(b"\x00garbage")
        files = sorted(os.listdir(broken))
        p = run_main("evaluate.py", str(broken), cwd=cwd)
        assert_one_line_error(p)
        assert damage in p.stderr and sorted(os.listdir(broken)) == files, "nothing written to a broken run"
    p = run_main("evaluate.py", "--latest", cwd=tmp_path)  # no models/ at all
    assert_one_line_error(p)


def test_evaluate_on_a_full_disk_leaves_nothing_behind(trained_run, small_disk):
    cwd, run = trained_run
    full_disk = small_disk("1m")
    shutil.copytree(run, full_disk / "run", ignore=shutil.ignore_patterns("optimizer.pt", "evaluation_*"))
    with open(full_disk / "filler", "wb") as f:  # fill what is left
        try:
            f.write(b"\0" * 2_000_000)
        except OSError:
            pass
    before = sorted(os.listdir(full_disk / "run"))
    p, _ = run_cli("evaluate.py", str(full_disk / "run"), cwd=cwd)
    assert_one_line_error(p)
    assert "No space left on device" in p.stderr
    assert sorted(os.listdir(full_disk / "run")) == before, "no partial or temporary file left"


def test_leaderboard_lists_unusable_runs_apart(trained_run, tmp_path):
    cwd, run = trained_run
    root = tmp_path / "models"
    shutil.copytree(run, root / "good")
    shutil.copytree(run, root / "truncated")
    weights = root / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    shutil.copytree(run, root / "unknown_arch")
    config = json.loads((root / "unknown_arch" / "config.json").read_text())
    (root / "unknown_arch" / "config.json").write_text(json.dumps({**config, "arch": "mamba"}))
    shutil.copytree(run, root / "null_arch")
    (root / "null_arch" / "config.json").write_text(json.dumps({**config, "arch": None}))
    p, _ = run_cli("evaluate.py", "--all", "--models-dir", str(root), cwd=cwd, env={"COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    ranked = (root / "leaderboard.csv").read_text()
    assert "good" in ranked and not any(x in ranked for x in ("truncated", "unknown_arch", "null_arch"))
    assert "not ranked: 3 runs that cannot be loaded" in p.stdout
    assert "mamba" in p.stdout and "is corrupt" in p.stdout and "Not ranked" in (root / "leaderboard.md").read_text()
    p = run_main("evaluate.py", str(root / "null_arch"), cwd=cwd)
    assert_one_line_error(p)
    assert "is corrupt (arch: " in p.stderr


def test_scoring_on_another_ood_range(trained_run):
    """A run is scored on longer OOD inputs than its data folder held, with its own train/val/test."""
    cwd, run = trained_run
    p, _ = run_cli("evaluate.py", str(run), "--ood-min-len", "61", "--ood-max-len", "70", cwd=cwd)
    assert p.returncode == 0, p.stderr
    [latest] = sorted((f for f in os.listdir(run) if f.startswith("evaluation_summary")), key=lambda f: os.path.getmtime(run / f))[-1:]
    s = json.load(open(run / latest))
    assert s["ood_options"] == {"ood_min_len": 61, "ood_max_len": 70} and set(s["ood"]["breakdown"]["length"]) == {"61-70"}
    assert s["test_sha256"] == json.load(open(run / "evaluation_summary.json"))["test_sha256"], "the same test split"
    assert "ood len 61..70" in p.stdout
    for bad in (["--ood-min-digits", "5"], ["--ood-min-len", "50", "--ood-max-len", "40"]):
        p = run_main("evaluate.py", str(run), *bad, cwd=cwd)
        assert_one_line_error(p)


def test_accuracy_curve_and_comparison(trained_run, arith_run):
    """--curve scores a run at every length from 1 to 4x training (CSV and PNG, numbered, never
    overwritten); --compare draws several runs, scoring only those without a curve."""
    cwd, run = trained_run
    p, _ = run_cli("evaluate.py", str(run), "--curve", "--per-value", "3", "--device", "cpu", cwd=cwd)
    assert p.returncode == 0, p.stderr
    max_len = json.load(open(run / "config.json"))["data"]["options"].get("max_len", 30)
    c = pd.read_csv(run / "by_length.csv")
    assert list(c["value"]) == list(range(1, 4 * max_len + 1)) and (c["n"] <= 3).all() and c["n"].sum() > 300
    assert c["exact_match"].dropna().between(0, 1).all() and os.path.getsize(run / "by_length.png") > 1000
    assert "exact match by input length" in p.stdout
    p, _ = run_cli("evaluate.py", str(run), "--curve", "--per-value", "3", cwd=cwd)
    assert p.returncode == 0 and (run / "by_length.2.csv").exists() and (run / "by_length.csv").exists()
    p, _ = run_cli("evaluate.py", "--compare", str(run), str(run), "--models-dir", str(cwd / "plots"), cwd=cwd)
    assert p.returncode == 0 and os.path.getsize(cwd / "plots" / "compare_by_length.png") > 1000, p.stderr
    assert not (run / "by_length.3.csv").exists(), "a run with a curve is not scored again"
    p = run_main("evaluate.py", "--compare", str(run), str(arith_run[1]), cwd=cwd)
    assert_one_line_error(p)
    assert "different tasks" in p.stderr
