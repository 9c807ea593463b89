"""Score saved runs honestly: unconstrained greedy decoding until <eos> on the frozen test set.

    python evaluate.py                    # list runs (newest first) and pick one
    python evaluate.py models/<run>       # score one run
    python evaluate.py --latest           # score the newest run
    python evaluate.py --all              # leaderboard of every saved run (CSV + Markdown too)
    python evaluate.py --latest --curve   # exact match at every input length (digit count) up to 4x training
    python evaluate.py --compare RUN RUN  # several runs' curves on one plot

The decoder is given nothing about the answer: not its length, not its tokens. It may write up to
the task's longest possible answer plus 8 tokens. Metrics: exact match (primary), token accuracy
(position by position, over the longer of output and answer), normalised edit distance; broken
down by the task's own metadata, on the test and the out-of-distribution split, next to trivial
baselines. A curve (--curve) scores the run at every value of its task's axis (input length or
the longer operand's digits) from 1 to 4x the training maximum, on frozen sets from the test share
(dataset.prepare_curve); its decoder may write up to the longest answer of the sets plus 8 tokens.
Results go to evaluation_result.txt (per problem, like the reference) and
evaluation_summary.json in the run folder; a later evaluation gets a new number, never overwrites.
"""
import os
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import io
import json
import time
from collections import Counter

import pandas as pd
from rich.console import Console
from rich.table import Table

import dataset as D
from infer import answers, correct, predict
from onnxrun import add_runtime_argument
from cli import Parser, UserError, add_device_args, add_run_args, fail, pick_device, pick_run, use_device
from files import clean_stale, write_bytes, write_json, write_text
from runs import RunError, list_runs, load_run

console = Console()


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def per_example(examples, preds, codec, task) -> pd.DataFrame:
    rows = []
    for e, p in zip(examples, preds):
        pt, tt = codec.encode(p), codec.encode(e.target)
        n = max(len(pt), len(tt), 1)
        rows.append({"input": e.input, "output": p, "expected": e.target, "correct": correct(task, p, e.target),
                     "token_acc": sum(x == y for x, y in zip(pt, tt)) / n if (pt or tt) else 1.0,
                     "edit_dist": edit_distance(pt, tt) / n, **e.meta})
    return pd.DataFrame(rows)


def baselines(train, examples) -> dict:
    """Exact match of answers that need no model: always empty, always the commonest train answer."""
    common = Counter(e.target for e in train).most_common(1)[0][0]
    return {"empty answer": sum(e.target == "" for e in examples) / len(examples),
            f"commonest train answer {common!r}": sum(e.target == common for e in examples) / len(examples)}


def length_bucket(n: int) -> str:
    lo = (n - 1) // 10 * 10 + 1
    return f"{lo:02d}-{lo + 9:02d}"


def breakdown(df: pd.DataFrame, task) -> dict:
    out = {}
    for key in task.breakdowns:
        col = df[key].map(length_bucket) if key == "length" else df[key]
        g = df.groupby(col.rename(key))["correct"].agg(["mean", "count"])
        out[key] = {str(k): {"exact_match": float(r["mean"]), "n": int(r["count"])} for k, r in g.iterrows()}
    return out


def summarize(df: pd.DataFrame) -> dict:
    return {"exact_match": float(df["correct"].mean()), "token_accuracy": float(df["token_acc"].mean()),
            "edit_distance": float(df["edit_dist"].mean()), "n": len(df)}


def evaluate_run(path, device="auto", ood: dict | None = None, runtime="torch") -> dict:
    """Score a run on its test and OOD splits, write evaluation_result.txt (every problem) and
    evaluation_summary.json (numbered, never overwritten; both or neither) and return the summary.
    ood: other values of the task's ood_* options, to score the run on another OOD range (the
    train, validation and test splits do not depend on them, so they stay those it trained with)."""
    device = pick_device(device) if isinstance(device, str) else device
    run = load_run(path, device, runtime)
    spec = D.DataSpec(**run.config["data"])
    if ood:
        if any(not k.startswith("ood_") for k in ood):
            raise RunError(f"only the OOD split can change for a trained run, not {sorted(k for k in ood if not k.startswith('ood_'))}")
        spec = D.DataSpec(**{**run.config["data"], "options": {**(spec.options or {}), **ood}})
        D.make_task(spec.task, spec.options)  # a bad range fails here, in one line
    folder = D.prepare(spec, run.config.get("data_dir", "data"))
    result = {"run": path, "arch": run.config["arch"], "task": spec.task, "data": folder, "ood_options": ood or {},
              "runtime": runtime,
              "test_sha256": D.read_meta(folder)["sha256"]["test"], "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    frames = {}
    t0 = time.time()
    for split in ("test", "ood"):
        exs = D.load_split(folder, split)
        frames[split] = per_example(exs, predict(run.model, run.codec, exs, run.task, device), run.codec, run.task)
        result[split] = {**summarize(frames[split]), "breakdown": breakdown(frames[split], run.task)}
    result["eval_seconds"] = time.time() - t0
    result["baselines"] = baselines(D.load_split(folder, "train"), D.load_split(folder, "test"))
    write_results(path, frames["test"], result)
    return result


def curve_run(path, device="auto", per_value=D.CURVE_SIZE, runtime="torch") -> dict:
    """Exact match of a run at every value of its task's axis, written to by_<axis>.csv and
    by_<axis>.png in the run folder (numbered, never overwritten). Returns {"axis", "trained",
    "curve": DataFrame(value, exact_match, n), "files"}; a value with no problems has n 0."""
    device = pick_device(device) if isinstance(device, str) else device
    return score_curve(load_run(path, device, runtime), path, device, per_value)


def score_curve(run, path, device, per_value) -> dict:
    """curve_run for a run already loaded (runs.load_run) from path."""
    spec = D.DataSpec(**run.config["data"])
    folder = D.prepare_curve(spec, per_value, run.config.get("data_dir", "data"))
    sets, axis = D.load_curve(folder), run.task.axis()
    exs = [e for v in sets for e in sets[v]]
    cap = max(len(run.codec.encode(e.target)) for e in exs) + 8
    outs = iter(answers(run.model, run.codec, [e.input for e in exs], cap, device)[0])
    rows = []
    for v, group in sets.items():
        hits = [correct(run.task, next(outs), e.target) for e in group]
        rows.append({"value": v, "exact_match": sum(hits) / len(hits) if hits else float("nan"), "n": len(hits)})
    curve = pd.DataFrame(rows)
    clean_stale(path)
    csv = next_free(os.path.join(path, f"by_{axis.name}.csv"))
    png = csv[:-4] + ".png"
    write_text(csv, curve.to_csv(index=False))
    plot_curves({run_label(path, run.config): curve}, axis.name, axis.trained, png, f"{run.config['arch']} on {spec.task}")
    return {"axis": axis.name, "trained": axis.trained, "curve": curve, "files": [csv, png]}


def run_label(path, config) -> str:
    return f"{config['arch']} ({os.path.basename(path.rstrip('/'))})"


def plot_curves(curves: dict, axis: str, trained: int, path: str, title: str):
    """One line per curve (label -> DataFrame of value, exact_match) over the axis, the values past
    training shaded, written as a PNG to path (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, c in curves.items():
        ax.plot(c["value"], c["exact_match"] * 100, marker="." if len(c) > 30 else "o", ms=3, label=label)
    top = max(c["value"].max() for c in curves.values())
    ax.axvspan(trained + 0.5, top + 0.5, color="grey", alpha=0.12, lw=0)
    ax.axvline(trained + 0.5, color="grey", ls="--")
    ax.text(trained + 1, 3, "longer than training" if axis == "length" else "more digits than training", color="grey", fontsize=8)
    ax.set_xlabel("input length" if axis == "length" else "digits of the longer operand")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=100, format="png")
    plt.close(fig)
    write_bytes(path, png.getvalue())


def latest_curve(run) -> pd.DataFrame | None:
    """The newest by_<axis>.csv a run folder holds, or None."""
    files = [f for f in os.listdir(run) if f.startswith("by_") and f.endswith(".csv")] if os.path.isdir(run) else []
    if not files:
        return None
    return pd.read_csv(os.path.join(run, max(files, key=lambda f: os.path.getmtime(os.path.join(run, f)))))


def compare(paths, root, device="auto", per_value=D.CURVE_SIZE, runtime="torch") -> str:
    """Several runs' curves on one plot, written to <root>/compare_by_<axis>.png (numbered); a run
    scored before (by_<axis>.csv) is not scored again. The runs must share a task."""
    device = pick_device(device) if isinstance(device, str) else device
    curves, axes = {}, set()
    for path in paths:
        run = load_run(path, device, runtime)
        axis = run.task.axis()
        axes.add((run.config["data"]["task"], axis.name, axis.trained))
        if len(axes) > 1:
            raise UserError(f"runs of different tasks or training ranges cannot share a plot: {sorted(axes)}")
        c = latest_curve(path)
        curves[run_label(path, run.config)] = c if c is not None else score_curve(run, path, device, per_value)["curve"]
    task, name, trained = axes.pop()
    out = next_free(os.path.join(root, f"compare_by_{name}.png"))
    os.makedirs(root, exist_ok=True)
    plot_curves(curves, name, trained, out, f"{task}: exact match by {name}")
    return out


def show_curve(result):
    """The curve as a table: a row per value, or per ten values (pooled) on a long axis."""
    c = result["curve"]
    width = 1 if len(c) <= 30 else 10
    t = Table(title=f"exact match by {result['axis']} (trained up to {result['trained']})")
    for col in (result["axis"], "exact match", "n"):
        t.add_column(col, justify="right")
    for lo in range(1, int(c["value"].max()) + 1, width):
        g = c[(c["value"] >= lo) & (c["value"] < lo + width)]
        n, hits = int(g["n"].sum()), float((g["exact_match"].fillna(0) * g["n"]).sum())
        t.add_row(str(lo) if width == 1 else f"{lo}..{lo + width - 1}", f"{hits / n:.2%}" if n else "-", str(n))
    console.print(t)
    console.print(f"written: {', '.join(result['files'])}")


def next_free(path: str) -> str:
    """path if free, else path with .2, .3 ... before the extension: never overwrite an evaluation."""
    stem, ext = os.path.splitext(path)
    k = 2
    while os.path.exists(path):
        path, k = f"{stem}.{k}{ext}", k + 1
    return path


def write_results(run, df, result):
    """evaluation_result.txt (per problem, like the reference project) and evaluation_summary.json,
    under the next free number; if either cannot be written, neither is left behind."""
    clean_stale(run)  # temporary files of an evaluation that was killed
    txt = next_free(os.path.join(run, "evaluation_result.txt"))
    summary = txt.replace("evaluation_result", "evaluation_summary").replace(".txt", ".json")
    result["files"] = {"per_problem": txt, "summary": summary}
    lines = []
    for i, r in enumerate(df.itertuples(), 1):
        lines += [f"Problem {i} {'correct' if r.correct else 'wrong'}", f"Input: {r.input}",
                  f"Output: {r.output}", f"Expected: {r.expected}", ""]
    write_text(txt, "\n".join(lines))
    try:
        write_json(summary, result)
    except BaseException:
        os.unlink(txt)
        raise


def ood_name(options):
    """'ood' and the ranges asked for, e.g. {'ood_min_len': 61, 'ood_max_len': 70} -> 'ood len 61..70'."""
    lo = {k[8:]: v for k, v in options.items() if k.startswith("ood_min_")}
    hi = {k[8:]: v for k, v in options.items() if k.startswith("ood_max_")}
    return " ".join(["ood"] + [f"{n} {lo.get(n, '')}..{hi.get(n, '')}" for n in sorted(lo.keys() | hi.keys())])


def show(result):
    runtime = "" if result.get("runtime", "torch") == "torch" else f", {result['runtime']} runtime"
    t = Table(title=f"{result['run']}  ({result['arch']}, {result['task']}{runtime})")
    for c in ("split", "exact match", "token accuracy", "edit distance", "n"):
        t.add_column(c, justify="right" if c != "split" else "left")
    ood_label = ood_name(result.get("ood_options", {}))
    for split in ("test", "ood"):
        r = result[split]
        t.add_row(split if split == "test" else ood_label, f"{r['exact_match']:.2%}", f"{r['token_accuracy']:.2%}", f"{r['edit_distance']:.3f}", str(r["n"]))
    for name, v in result["baselines"].items():
        t.add_row(f"baseline: {name}", f"{v:.2%}", "", "", "")
    console.print(t)
    for split in ("test", "ood"):
        for key, groups in result[split]["breakdown"].items():
            b = Table(title=f"{split} by {key}")
            b.add_column(key)
            b.add_column("exact match", justify="right")
            b.add_column("n", justify="right")
            for k, g in groups.items():
                b.add_row(k, f"{g['exact_match']:.2%}", str(g["n"]))
            console.print(b)
    console.print(f"scored in {result['eval_seconds']:.1f}s; per problem: {result['files']['per_problem']}")


def leaderboard(root="models"):
    """Rank every run that loads by task and test exact match; list the runs that do not load
    (damaged weights, an unknown architecture or task) apart, with the reason, never ranked."""
    runs = list_runs(root)
    if not runs:
        fail(f"no saved runs under {root}/; train one with: python train.py gru 1min")
    usable, broken = [], []
    for r in runs:
        try:
            load_run(r["run"])
        except RunError as e:
            broken.append({"run": r["run"], "reason": str(e)})
            continue
        s = latest_summary(r["run"])
        usable.append({**r, "ood_em": s["ood"]["exact_match"] if s else None})
    cols = ["arch", "task", "budget", "test_em", "ood_em", "steps", "params", "wall_time", "run"]
    df = pd.DataFrame(usable, columns=[*cols, "created"])
    df = df.sort_values(["task", "test_em"], ascending=[True, False])[cols]
    t = Table(title=f"leaderboard ({len(df)} runs)")
    for c in cols:
        t.add_column(c)
    for r in df.itertuples(index=False):
        t.add_row(*[f"{v:.2%}" if k.endswith("_em") and v is not None and v == v else
                    f"{v:.0f}" if isinstance(v, float) and v == v else str(v) for k, v in zip(cols, r)])
    console.print(t)
    md = df.to_markdown(index=False, floatfmt=".4f") + "\n"
    if broken:
        b = Table(title=f"not ranked: {len(broken)} runs that cannot be loaded")
        b.add_column("run")
        b.add_column("reason")
        for r in broken:
            b.add_row(r["run"], r["reason"])
        console.print(b)
        md += f"\nNot ranked (cannot be loaded):\n\n{pd.DataFrame(broken).to_markdown(index=False)}\n"
    write_text(os.path.join(root, "leaderboard.csv"), df.to_csv(index=False))
    write_text(os.path.join(root, "leaderboard.md"), md)
    console.print(f"written: {root}/leaderboard.csv, {root}/leaderboard.md")


def latest_summary(run):
    files = sorted((f for f in os.listdir(run) if f.startswith("evaluation_summary")), key=lambda f: os.path.getmtime(os.path.join(run, f)))
    if not files:
        return None
    try:
        with open(os.path.join(run, files[-1])) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(p, "score")
    p.add_argument("--all", action="store_true", help="leaderboard of every saved run")
    p.add_argument("--curve", action="store_true", help="score the run at every input length (digit count) from 1 to 4x training")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="draw these runs' curves on one plot (scoring those without one)")
    p.add_argument("--per-value", type=int, default=D.CURVE_SIZE,
                   help=f"problems per length (digit count) of a curve (default {D.CURVE_SIZE})")
    add_device_args(p)
    add_runtime_argument(p)
    g = p.add_argument_group("another OOD range for the run's task (train, validation and test stay its own)")
    for dest, decls in D.task_flags().items():  # the tasks' ood_* options
        if dest.startswith("ood_"):
            g.add_argument("--" + dest.replace("_", "-"), type=int,
                           help="; ".join(f"{t}: {f.metadata['help']}" for t, f in decls))
    a = p.parse_args(argv)
    ood = {k: v for k, v in vars(a).items() if k.startswith("ood_") and v is not None}
    try:
        device = use_device(a)
        if a.all:
            return leaderboard(a.models_dir)
        if a.per_value < 1:
            raise UserError(f"--per-value must be at least 1, got {a.per_value}")
        if a.compare:
            console.print(f"written: {compare(a.compare, a.models_dir, device, a.per_value, a.runtime)}")
            return 0
        if not (a.run or a.latest or sys.stdin.isatty()):
            p.print_usage(sys.stderr)
            fail("give a run folder, --latest or --all (no terminal to ask on)")
        path = pick_run(a.run, a.latest, a.models_dir, "evaluate")
        if a.curve:
            show_curve(curve_run(path, device, a.per_value, a.runtime))
        else:
            show(evaluate_run(path, device, ood, a.runtime))
    except UserError as e:
        fail(str(e))
    except OSError as e:  # a full disk or a read-only run folder: write_text left nothing behind
        fail(f"could not write {e.filename or 'a result file'} ({e.strerror or e}); nothing was left half-written")
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
