"""Benchmark of a run's three runtimes: PyTorch eager, its ONNX export and the int8 export, run by
onnxruntime, on the same greedy decoding (scoring.py's).

    python -m bench.runtimes models/<run> [models/<run> ...]            # exports first if needed
    python -m bench.runtimes models/<run> --commit                       # and git-commit bench/results/runtimes.csv

For each run and runtime: exact match on the test and OOD splits (scoring.evaluate_run, which also
writes the usual evaluation files), answers that differ from PyTorch's, model file size,
single-problem latency (median and p90 of `--single` test problems asked one at a time, as
predict.py and a lightly loaded serve.py do) and batch throughput (the whole test split in
infer.py's batches of 500, median of 3 rounds). The three runtimes take turns, problem by
problem, so that a slow spell of a shared machine weighs on all three alike. The file size of an
export is that of all its graphs. Everything runs on the CPU with the machine's cores; nothing else
should run meanwhile.
"""
import argparse
import os
import statistics
import sys
import time

import pandas as pd

import dataset as D
import infer
import onnxexport
import scoring
from bench.common import RESULTS as RESULTS_DIR
from bench.common import add_commit_arg, append_rows, git_commit
from cli import fail
from errors import RunError, UserError
from files import check_writable
from onnxrun import DATA, FILES, RUNTIMES
from runs import load_run, machine

RESULTS = os.path.join(RESULTS_DIR, "runtimes.csv")
WEIGHTS = {"torch": ("model.safetensors",), **{rt: (*graphs, DATA[rt]) for rt, graphs in FILES.items()}}


def timings(runs: dict, problems, cap, single: int, rounds: int = 3) -> tuple[dict, dict]:
    """Per runtime: single-problem latency (median, p90, in ms), batch throughput (problems/s, the
    median of rounds), and the answers. The runtimes take turns problem by problem (the order
    rotating), so that a slow spell of a shared machine falls on all of them alike."""
    names = list(runs)
    for run in runs.values():  # warm-up: first calls allocate
        infer.answers(run.model, run.codec, problems[:8], cap)
    lat = {n: [] for n in names}
    for i, p in enumerate(problems[:single]):
        for n in names[i % len(names):] + names[:i % len(names)]:
            t = time.perf_counter()
            infer.answers(runs[n].model, runs[n].codec, [p], cap)
            lat[n].append((time.perf_counter() - t) * 1000)
    batch, answers = {n: [] for n in names}, {}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            answers[n], _ = infer.answers(runs[n].model, runs[n].codec, problems, cap)
            batch[n].append(len(problems) / (time.perf_counter() - t))
    return {n: {"latency_ms_p50": statistics.median(lat[n]), "latency_ms_p90": statistics.quantiles(lat[n], n=10)[-1],
                "batch_problems_per_s": statistics.median(batch[n])} for n in names}, answers


def measure(path: str, single: int) -> list[dict]:
    try:
        runs = {rt: load_run(path, "cpu", rt) for rt in RUNTIMES}
    except RunError:  # not exported yet, or by an older export.py
        onnxexport.export(path, int8=True, log=lambda line: print(f"  {line}"))
        runs = {rt: load_run(path, "cpu", rt) for rt in RUNTIMES}
    results = {rt: scoring.evaluate_run(path, "cpu", runtime=rt) for rt in RUNTIMES}
    torch_run = runs["torch"]
    problems = [e.input for e in D.load_split(results["torch"]["data"], "test")]
    times, answers = timings(runs, problems, infer.max_new_tokens(torch_run.task), single)
    rows = []
    for rt in RUNTIMES:
        files = [f for f in WEIGHTS[rt] if os.path.isfile(os.path.join(path, f))]
        row = {"run": path, "arch": torch_run.config["arch"], "task": torch_run.task.name, "runtime": rt,
               "test_em": results[rt]["test"]["exact_match"], "ood_em": results[rt]["ood"]["exact_match"],
               "test_same_as_torch": sum(a == b for a, b in zip(answers[rt], answers["torch"])) / len(problems),
               "file_kib": sum(os.path.getsize(os.path.join(path, f)) for f in files) / 1024, **times[rt],
               "cpu_count": machine()["cpu_count"], "date": time.strftime("%Y-%m-%d %H:%M")}
        rows.append(row)
        print(f"  {rt:5s} test {row['test_em']:.2%} ood {row['ood_em']:.2%} same {row['test_same_as_torch']:.2%} "
              f"{row['file_kib']:.0f} KiB  p50 {row['latency_ms_p50']:.2f} ms  batch {row['batch_problems_per_s']:.0f}/s")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--single", type=int, default=200, help="problems asked one at a time for the latency (default 200)")
    add_commit_arg(p)
    a = p.parse_args(argv)
    rows = []
    try:
        check_writable(RESULTS_DIR)  # before measuring: rows that cannot be kept are not computed
        for path in a.runs:
            print(path.rstrip("/"))
            rows += measure(path.rstrip("/"), a.single)
    except UserError as e:
        fail(str(e))
    df = pd.DataFrame(rows)
    print(df.drop(columns=["run", "date", "cpu_count"]).to_markdown(index=False, floatfmt=".4g"))
    append_rows(RESULTS, rows)
    print(f"appended {len(df)} rows to {RESULTS}")
    if a.commit:
        git_commit(RESULTS, f"bench.runtimes: {', '.join(sorted(set(df['arch'])))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
