"""Benchmark of fine-tuning: transfer from a parent task, LoRA against full fine-tuning, and
forgetting of the parent task.

    python -m bench.finetune                          # both protocols, gpt, the first seed
    python -m bench.finetune --only bracket --archs gpt,lstm --seeds 0,1,2 --lora 4,8,16 --commit

A protocol trains a parent run on task A, then from it (train.py's --init-from) children on task
B: full fine-tuning and LoRA at each rank, all for the same budget; and a run from scratch on B for
the parent's and the child's budgets together. Each child is scored on B's test and OOD splits
(scoring.evaluate_run, which writes the usual files) and on A's test split (forgetting: the
child's codec extends the parent's, so A's problems encode the same way).

    bracket   A: lengths 1..30, 1min      B: lengths 31..60 (OOD 61..120), 1min     scratch: 2min
    arith     A: + - up to 3 digits, reversed, 5min
              B: the four-operation set (+-*/, 2 digits, negatives, decimals), reversed, 5min   scratch: 10min

Rows are appended to bench/results/finetune.csv (--commit: and committed); runs go to bench/runs/. The parent's
row holds its exact match on B's test split (before any fine-tuning) as test_em, and on its own
test split as parent_task_em.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass

import pandas as pd

import archs
import dataset as D
import infer
import scoring
from bench.common import RESULTS as RESULTS_DIR
from bench.common import add_commit_arg, append_rows, git_commit
from cli import fail
from errors import UserError
from files import check_writable
from runs import load_run
from settings import Request, parse_budget
from training import train

RESULTS = os.path.join(RESULTS_DIR, "finetune.csv")
RUNS_DIR = os.path.join("bench", "runs")


@dataclass
class Protocol:
    parent: D.DataSpec
    child: D.DataSpec
    parent_budget: str
    child_budget: str
    scratch_budget: str


FOUR_OPS = {"ops": "+-*/", "digits": 2, "negatives": True, "decimals": True, "format": "reversed"}
PROTOCOLS = {
    "bracket": Protocol(D.DataSpec("bracket", {}), D.DataSpec("bracket", {"min_len": 31, "max_len": 60, "ood_min_len": 61,
                                                                           "ood_max_len": 120}), "1min", "1min", "2min"),
    "arith": Protocol(D.DataSpec("arith", {"ops": "+-", "digits": 3, "format": "reversed"}), D.DataSpec("arith", FOUR_OPS),
                      "5min", "5min", "10min"),
}


def parent_em(run_path: str, spec: D.DataSpec) -> float:
    """A run's exact match on the test split of another task (the parent's)."""
    run = load_run(run_path, "cpu")
    return infer.exact_match(run.model, run.codec, run.split("test", spec), spec.task_instance)


def row_of(name, arch, seed, variant, budget, m, spec_a) -> dict:
    ev = scoring.evaluate_run(m["run"], "cpu")
    return {"protocol": name, "arch": arch, "seed": seed, "variant": variant, "budget": budget,
            "test_em": ev["test"]["exact_match"], "ood_em": ev["ood"]["exact_match"], "parent_task_em": parent_em(m["run"], spec_a),
            "trainable_params": m["trainable_params"], "params": m["params"], "steps": m["steps"],
            "steps_per_s": m["steps"] / max(1e-9, m["train_time"]), "date": time.strftime("%Y-%m-%d %H:%M"),
            "run": m["run"]}


def protocol(name, p: Protocol, arch, seed, ranks, threads) -> list[dict]:
    def run(spec, budget, **kw):
        return train(Request(arch=arch, budget=budget, data=spec, seed=seed, threads=threads, models_dir=RUNS_DIR, **kw), quiet=True)

    parent = run(p.parent, p.parent_budget)
    rows = [row_of(name, arch, seed, "parent", p.parent_budget, parent, p.parent)]
    rows[0].update(test_em=parent_em(parent["run"], p.child), ood_em=None)  # the parent on task B before fine-tuning
    for variant, lora in [("full", None)] + [(f"lora{r}", r) for r in ranks]:
        m = run(p.child, p.child_budget, init_from=parent["run"], lora=lora)
        rows.append(row_of(name, arch, seed, variant, p.child_budget, m, p.parent))
    rows.append(row_of(name, arch, seed, "scratch", p.scratch_budget, run(p.child, p.scratch_budget), p.parent))
    for r in rows:
        print(f"  {r['variant']:8s} {r['budget']:>5s}  B test {r['test_em']:.2%}  A test {r['parent_task_em']:.2%}  "
              f"trainable {r['trainable_params']:,} of {r['params']:,}  {r['steps_per_s']:.1f} steps/s", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(PROTOCOLS), help=f"protocols: {', '.join(PROTOCOLS)}")
    p.add_argument("--archs", default="gpt")
    p.add_argument("--seeds", default="0")
    p.add_argument("--lora", default="4,8,16", help="LoRA ranks to compare with full fine-tuning")
    p.add_argument("--threads", type=int)
    add_commit_arg(p)
    a = p.parse_args(argv)
    try:
        names = [n for n in a.only.split(",") if n]
        if bad := [n for n in names if n not in PROTOCOLS]:
            raise UserError(f"unknown protocol {bad[0]!r}; choose from {', '.join(PROTOCOLS)}")
        arch_list = [archs.resolve(x) for x in a.archs.split(",")]
        ranks = [int(r) for r in a.lora.split(",") if r]
        for n in names:
            for b in ("parent_budget", "child_budget", "scratch_budget"):
                parse_budget(getattr(PROTOCOLS[n], b))
        for folder in (RESULTS_DIR, RUNS_DIR):  # before any run: what cannot be kept is not computed
            check_writable(folder)
        rows = []
        for n in names:
            for arch in arch_list:
                for seed in (int(s) for s in a.seeds.split(",")):
                    print(f"{n} {arch} seed {seed}", flush=True)
                    new = protocol(n, PROTOCOLS[n], arch, seed, ranks, a.threads)
                    rows += new
                    append_rows(RESULTS, new)  # as each protocol ends: a stopped bench keeps what it measured
                    if a.commit:
                        git_commit(RESULTS, f"bench.finetune: {n} {arch} seed {seed}")
    except UserError as e:
        fail(str(e))
    df = pd.DataFrame(rows)
    print(df.drop(columns=["run", "date"]).to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
