"""The Chomsky-hierarchy table (Deletang et al., "Neural Networks and the Chomsky Hierarchy", ICLR
2023) from bench/results/runs.csv, in the paper's layout, beside the paper's Table 2: rows are the
tasks by level, columns our architectures. python -m bench --report writes it into
bench/results/README.md and into docs/chomsky.md (between CHOMSKY_BEGIN and CHOMSKY_END); the
protocol is bench/run.py's CHOMSKY presets.

Each cell gives the paper's score, per-token accuracy averaged over the lengths scored (41..500),
the maximum over seeds, then ours: exact match averaged over those lengths, the median over seeds.
A cell is solved at a paper score of 90 or more (marked **bold**), as the paper counts it.
"""
import json
import os

import pandas as pd

import scoring

# The paper's Table 2 (score: per-token accuracy over lengths 41..500, max over 10 seeds and 3 learning
# rates; ../shared/CHOMSKY.md). A score in UNSEEN was not found in a readable copy of the paper:
# shown with a `?`, and left out of the agreements counted.
PAPER_COLUMNS = ["RNN", "Stack-RNN", "Tape-RNN", "Transformer", "LSTM"]
PAPER = {
    "even_pairs": [100.0, 100.0, 100.0, 96.4, 100.0],
    "modular_arithmetic": [100.0, 100.0, 100.0, 24.2, 100.0],
    "parity_check": [100.0, 100.0, 100.0, 52.0, 100.0],
    "cycle_navigation": [100.0, 100.0, 100.0, 61.9, 100.0],
    "stack_manipulation": [56.0, 100.0, 100.0, 57.5, 59.1],
    "reverse_string": [62.0, 100.0, 100.0, 62.3, 60.9],
    "modular_arithmetic_brackets": [41.3, 96.1, 95.4, 32.5, 59.2],
    "solve_equation": [51.0, 56.2, 64.4, 25.7, 67.8],
    "duplicate_string": [50.3, 52.8, 100.0, 52.8, 57.6],
    "missing_duplicate_string": [52.3, 55.2, 100.0, 56.4, 54.3],
    "odds_first": [51.0, 51.9, 100.0, 52.8, 55.6],
    "binary_addition": [50.3, 52.7, 100.0, 54.3, 55.5],
    "binary_multiplication": [50.0, 52.7, 58.5, 52.2, 53.1],
    "compute_sqrt": [54.3, 56.5, 57.8, 52.4, 57.5],
    "bucket_sort": [27.9, 78.1, 70.7, 91.9, 99.3],
}
UNSEEN = {(task, PAPER_COLUMNS[i]) for task, columns in {
    "even_pairs": (0, 1, 2, 3, 4), "cycle_navigation": (0, 1, 2, 4), "modular_arithmetic_brackets": (0, 1, 2, 4),
    "solve_equation": (0, 1, 2, 3, 4), "missing_duplicate_string": (0, 1, 3, 4), "binary_addition": (0, 1, 3, 4),
    "binary_multiplication": (0, 1, 2, 3, 4), "compute_sqrt": (0, 1, 2, 3, 4), "bucket_sort": (0, 1, 2, 3, 4),
}.items() for i in columns}
# our architecture -> the paper's column it corresponds to (gru stands for the paper's vanilla RNN;
# tra, ber and gpt for its Transformer, an encoder given |y| blanks)
CORRESPONDS = {"gru": "RNN", "lstm": "LSTM", "stack": "Stack-RNN", "tape": "Tape-RNN", "tra": "Transformer",
               "ber": "Transformer", "gpt": "Transformer"}
COLUMNS = ["gru", "lstm", "stack", "tape", "tra", "ber", "gpt"]
SOLVED = 90.0
BEGIN = "<!-- chomsky: written by python -m bench --report from bench/results/runs.csv -->"
END = "<!-- end of chomsky -->"


def run_scores(curve) -> tuple[float, float] | None:
    """A run's (paper score, our score), both 0..100: token accuracy and exact match, each the mean
    over the lengths its curve scored (runs.csv's JSON); None without a curve."""
    if not isinstance(curve, str):
        return None
    c = json.loads(curve)
    scored = [v for v, (_, n) in c["em"].items() if n]
    if not scored or "acc" not in c:
        return None
    return (100 * sum(c["acc"][v] for v in scored) / len(scored), 100 * sum(c["em"][v][0] for v in scored) / len(scored))


def task_of(name: str) -> str:
    """A Chomsky preset's task: chomsky-parity_check -> parity_check (quick-chomsky-... too)."""
    return name.split("-", 1)[1] if name.startswith("chomsky-") else name.removeprefix("quick-chomsky-")


def cells(rows: pd.DataFrame, presets: dict) -> dict:
    """(task, arch) -> (paper score: max over seeds, our score: median over seeds, seeds) of the rows
    of the presets given (name -> Preset of a Chomsky study) at their own budget."""
    out = {}
    for name, p in presets.items():
        task = task_of(name)
        mine = rows[(rows["preset"] == name) & (rows["budget"] == p.budget)]
        for arch, g in mine.groupby("arch"):
            scores = [s for s in map(run_scores, g["curve"]) if s]
            if scores:
                out[task, arch] = (max(s[0] for s in scores), float(pd.Series([s[1] for s in scores]).median()), len(scores))
    return out


def table(rows: pd.DataFrame, presets: dict, levels: dict) -> list[str]:
    """The Markdown lines of our table beside the paper's, with the agreements counted; levels:
    level -> task names in the paper's order."""
    got = cells(rows, presets)
    if not got:
        return []
    fmt = lambda v: f"**{v:.1f}**" if v >= SOLVED else f"{v:.1f}"  # noqa: E731
    lines = ["| level | task | " + " | ".join(COLUMNS) + " | paper: " + " | ".join(PAPER_COLUMNS) + " |",
             "|---|---|" + "---|" * (len(COLUMNS) + len(PAPER_COLUMNS))]
    agree = disagree = 0
    for level, names in levels.items():
        for task in names:
            ours = []
            for arch in COLUMNS:
                if (task, arch) not in got:
                    ours.append("-")
                    continue
                paper_score, our_em, _ = got[task, arch]
                ours.append(f"{fmt(paper_score)} ({our_em:.0f})")
                col = CORRESPONDS[arch]
                if task in PAPER and (task, col) not in UNSEEN:
                    same = (paper_score >= SOLVED) == (PAPER[task][PAPER_COLUMNS.index(col)] >= SOLVED)
                    agree, disagree = agree + same, disagree + (not same)
            paper = [(fmt(v) + ("?" if (task, c) in UNSEEN else "")) for c, v in zip(PAPER_COLUMNS, PAPER.get(task, []))]
            lines.append(f"| {level} | {task} | " + " | ".join(ours) + " | " + " | ".join(paper or ["-"] * len(PAPER_COLUMNS)) + " |")
    seeds = sorted({n for *_, n in got.values()})
    return ["Each of our cells: the paper's score (token accuracy averaged over the lengths scored, the best "
            f"seed of {', '.join(map(str, seeds))}) and, in brackets, our exact match (averaged over the lengths, the "
            "median seed); **bold**: solved (>= 90). The paper's cells marked `?` were not seen in a readable copy.",
            "", *lines, "",
            f"Solved or not, against the paper's corresponding column (gru: RNN, lstm: LSTM, stack: Stack-RNN, tape: "
            f"Tape-RNN, tra/ber/gpt: Transformer), on the cells the paper's copy shows: {agree} agree, {disagree} disagree.", ""]


def summary(rows: pd.DataFrame, presets: dict, levels: dict) -> list[str]:
    """The README's table of the suite: a level per row, an architecture per column, each cell the
    tasks it solves (paper score >= 90, best seed) of those it ran and, in brackets, the paper's
    count for its corresponding column on the same tasks, where the paper's copy shows them."""
    got = cells(rows, presets)
    if not got:
        return []
    lines = ["| level | " + " | ".join(f"{arch} ({CORRESPONDS[arch]})" for arch in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for level, names in levels.items():
        out = []
        for arch in COLUMNS:
            col, ran = CORRESPONDS[arch], [t for t in names if (t, arch) in got]
            seen = [t for t in ran if t in PAPER and (t, col) not in UNSEEN]
            paper = sum(PAPER[t][PAPER_COLUMNS.index(col)] >= SOLVED for t in seen)
            out.append(f"{sum(got[t, arch][0] >= SOLVED for t in ran)}/{len(ran)} ({paper}/{len(seen)})" if ran else "-")
        lines.append(f"| {level} | " + " | ".join(out) + " |")
    return [*lines, ""]


def curve_picture(level: str, study: str = "chomsky") -> str:
    """The file name of a level's curve in bench/results: chomsky-regular-curve.png."""
    return f"{study}-{level}-curve.png"


def level_curves(rows: pd.DataFrame, presets: dict, levels: dict, results: str) -> list[str]:
    """chomsky-<level>-curve.png in results: for each architecture, the token accuracy at each
    length scored, averaged over the level's tasks it ran (median over seeds per task); the
    names of the pictures drawn."""
    made = []
    for level, names in levels.items():
        curves, trained = {}, None
        for arch in COLUMNS:
            per_task = []
            for name, p in presets.items():
                if task_of(name) not in names:
                    continue
                mine = rows[(rows["preset"] == name) & (rows["budget"] == p.budget) & (rows["arch"] == arch)]
                parsed = [c for c in (json.loads(c) for c in mine["curve"] if isinstance(c, str)) if "acc" in c]
                if not parsed:
                    continue
                trained = parsed[0]["trained"]
                per_task.append(pd.DataFrame([{"value": int(v), "acc": c["acc"][v]} for c in parsed
                                              for v, (_, n) in c["em"].items() if n]).groupby("value")["acc"].median())
            if per_task:
                mean = pd.concat(per_task, axis=1).mean(axis=1)
                curves[f"{arch} ({len(per_task)} task{'s' * (len(per_task) > 1)})"] = \
                    pd.DataFrame({"value": mean.index, "token_accuracy": mean.values})
        if curves:
            name = curve_picture(level)
            scoring.plot_curves(curves, "input length", trained, os.path.join(results, name),
                                f"{level}: token accuracy by length, mean over the level's tasks", measure="token_accuracy")
            made.append(name)
    return made


def write_doc(lines: list[str], path: str) -> bool:
    """Replace the block between BEGIN and END in path (docs/chomsky.md) with lines; False when it
    has no such block."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{BEGIN}\n" + "\n".join(lines) + f"\n{END}{rest.split(END, 1)[1]}")
    return True
