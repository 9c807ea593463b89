"""Scoring saved runs honestly: unconstrained greedy decoding until <eos> on the frozen test set
and the out-of-distribution split, accuracy curves along the task's axis, and the leaderboard.
evaluate.py is its command line; python -m bench scores every run it trains with it.

The decoder is given nothing about a problem's answer: not its length, not its tokens. It may
write up to the longest answer of the split it scores plus 8 tokens (infer.predict). Metrics:
exact match (primary), token accuracy (position by position, over the longer of output and
answer), normalised edit distance; broken
down by the task's own metadata (Task.breakdowns), on the test and the out-of-distribution split,
next to trivial baselines. A curve scores the run at every value of its task's axis (Axis) from 1
to 4x the training maximum, on frozen sets from the test share (dataset.prepare_curve); its decoder
may write up to the longest answer of the sets plus 8 tokens. Results go to evaluation_result.txt
(per problem, like the reference) and evaluation_summary.json in the run folder; a later
evaluation gets a new number, never overwrites.
"""
import io
import json
import os
import time
from collections import Counter

import pandas as pd

import dataset as D
import devices
from errors import RunError, UserError
from files import clean_stale, write_bytes, write_json, write_text
from infer import answers, correct, predict
from runs import DATA_DIR, list_runs, load_run
from tasks.common import group_of, group_order


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


def breakdown(df: pd.DataFrame, task) -> dict:
    """Exact match per group of each of the task's breakdowns (meta key -> group width), groups in
    their numeric order (`61-70` before `101-110`)."""
    out = {}
    for key, width in task.breakdowns.items():
        groups = df[key].map(lambda v, w=width: group_of(v, w)).rename(key)
        g = df.groupby(groups)["correct"].agg(["mean", "count"])
        out[key] = {k: {"exact_match": float(g.loc[k, "mean"]), "n": int(g.loc[k, "count"])} for k in sorted(g.index, key=group_order)}
    return out


def summarize(df: pd.DataFrame) -> dict:
    return {"exact_match": float(df["correct"].mean()), "token_accuracy": float(df["token_acc"].mean()),
            "edit_distance": float(df["edit_dist"].mean()), "n": len(df)}


def evaluate_run(path, device="auto", ood: dict | None = None, runtime="torch", data_dir=DATA_DIR) -> dict:
    """Score a run on its test and OOD splits, write evaluation_result.txt (every problem) and
    evaluation_summary.json (numbered, never overwritten; both or neither) and return the summary.
    ood: other values of the task's ood_* options, to score the run on another OOD range (the
    train, validation and test splits do not depend on them, so they stay those it trained with)."""
    device = devices.choose(device)
    run = load_run(path, device, runtime, data_dir)
    spec = run.spec
    if ood:
        if any(not k.startswith("ood_") for k in ood):
            raise RunError(f"only the OOD split can change for a trained run, not {sorted(k for k in ood if not k.startswith('ood_'))}")
        spec = D.DataSpec(**{**run.config["data"], "options": {**(spec.options or {}), **ood}})
        spec.task_instance  # noqa: B018 -- a bad range fails here, in one line
    folder = run.data_folder(spec if ood else None)
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


def curve_run(path, device="auto", per_value=D.CURVE_SIZE, runtime="torch", values: list[int] | None = None, data_dir=DATA_DIR) -> dict:
    """Exact match and token accuracy of a run at every value of its task's axis (or at the values
    given), written to by_<axis>.csv and by_<axis>.png in the run folder (numbered, never
    overwritten). Returns {"axis", "label", "trained", "curve": DataFrame(value, exact_match,
    token_accuracy, n), "files"}; a value with no problems has n 0."""
    device = devices.choose(device)
    return score_curve(load_run(path, device, runtime, data_dir), path, device, per_value, values)


def score_curve(run, path, device, per_value, values=None) -> dict:
    """curve_run for a run already loaded (runs.load_run) from path."""
    folder = D.prepare_curve(run.spec, per_value, run.data_dir, values)
    sets, axis = D.load_curve(folder), run.task.axis()
    exs = [e for v in sets for e in sets[v]]
    cap = max((len(run.codec.encode(e.target)) for e in exs), default=0) + 8
    outs = iter(answers(run.model, run.codec, [e.input for e in exs], cap, device)[0])
    rows = []
    for v, group in sets.items():
        scored = per_example(group, [next(outs) for _ in group], run.codec, run.task) if group else None
        rows.append({"value": v, "exact_match": float(scored["correct"].mean()) if group else float("nan"),
                     "token_accuracy": float(scored["token_acc"].mean()) if group else float("nan"), "n": len(group)})
    curve = pd.DataFrame(rows)
    clean_stale(path)
    csv = next_free(os.path.join(path, f"by_{axis.name}.csv"))
    png = csv[:-4] + ".png"
    write_text(csv, curve.to_csv(index=False))
    plot_curves({run_label(path, run.config): curve}, axis.label, axis.trained, png, f"{run.config['arch']} on {run.spec.task}")
    return {"axis": axis.name, "label": axis.label, "trained": axis.trained, "curve": curve, "files": [csv, png]}


def run_label(path, config) -> str:
    return f"{config['arch']} ({os.path.basename(path.rstrip('/'))})"


def plot_curves(curves: dict, label: str, trained: int, path: str, title: str, measure: str = "exact_match"):
    """One line per curve (label -> DataFrame of value and the measure, 0..1) over the axis (its
    label, as Axis.label), the values past training shaded, written as a PNG to path (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, c in curves.items():
        ax.plot(c["value"], c[measure] * 100, marker="." if len(c) > 30 else "o", ms=3, label=name)
    top = max(c["value"].max() for c in curves.values())
    ax.axvspan(trained + 0.5, top + 0.5, color="grey", alpha=0.12, lw=0)
    ax.axvline(trained + 0.5, color="grey", ls="--")
    ax.text(trained + 1, 3, "beyond training", color="grey", fontsize=8)
    ax.set_xlabel(label)
    ax.set_ylabel(f"{measure.replace('_', ' ')} (%)")
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
    device = devices.choose(device)
    curves, axes = {}, set()
    for path in paths:
        run = load_run(path, device, runtime)
        axis = run.task.axis()
        axes.add((run.spec.task, axis.name, axis.label, axis.trained))
        if len(axes) > 1:
            raise UserError(f"runs of different tasks or training ranges cannot share a plot: {sorted(axes)}")
        c = latest_curve(path)
        curves[run_label(path, run.config)] = c if c is not None else score_curve(run, path, device, per_value)["curve"]
    task, name, label, trained = axes.pop()
    out = next_free(os.path.join(root, f"compare_by_{name}.png"))
    os.makedirs(root, exist_ok=True)
    plot_curves(curves, label, trained, out, f"{task}: exact match by {label}")
    return out


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


def leaderboard(root="models") -> tuple[pd.DataFrame, list[dict]]:
    """Every run under root that loads, ranked by task and test exact match (with its latest OOD
    score), and those that do not load (damaged weights, an unknown architecture or task) with the
    reason, never ranked; leaderboard.csv and leaderboard.md written in root."""
    runs = list_runs(root)
    if not runs:
        raise RunError(f"no saved runs under {root}/; train one with: python train.py gru 1min")
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
    md = df.to_markdown(index=False, floatfmt=".4f") + "\n"
    if broken:
        md += f"\nNot ranked (cannot be loaded):\n\n{pd.DataFrame(broken).to_markdown(index=False)}\n"
    write_text(os.path.join(root, "leaderboard.csv"), df.to_csv(index=False))
    write_text(os.path.join(root, "leaderboard.md"), md)
    return df, broken


def latest_summary(run):
    files = sorted((f for f in os.listdir(run) if f.startswith("evaluation_summary")), key=lambda f: os.path.getmtime(os.path.join(run, f)))
    if not files:
        return None
    try:
        with open(os.path.join(run, files[-1])) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
