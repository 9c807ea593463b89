"""Score saved runs honestly (the command line of scoring.py, which says how): unconstrained greedy
decoding until <eos> on the frozen test set and the out-of-distribution split.

    python evaluate.py                    # list runs (newest first) and pick one
    python evaluate.py models/<run>       # score one run
    python evaluate.py --latest           # score the newest run
    python evaluate.py --all              # leaderboard of every saved run (CSV + Markdown too)
    python evaluate.py --latest --curve   # exact match at every input length (digit count) up to 4x training
    python evaluate.py --compare RUN RUN  # several runs' curves on one plot

Results go to evaluation_result.txt (per problem) and evaluation_summary.json in the run folder;
a later evaluation gets a new number, never overwrites.
"""
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse

from rich.table import Table

import dataset as D
import scoring
from cli import Parser, add_device_args, add_run_args, fail, pick_run, use_device
from errors import SettingsError, UserError
from onnxrun import add_runtime_argument

console = cli.console()


def show_curve(result):
    """The curve as a table: a row per value, or per ten values (pooled) on a long axis."""
    c = result["curve"]
    width = 1 if len(c) <= 30 else 10
    t = Table(title=f"exact match by {result['label']} (trained up to {result['trained']})")
    for col in (result["label"], "exact match", "n"):
        t.add_column(col, justify="right")
    for lo in range(1, int(c["value"].max()) + 1, width):
        g = c[(c["value"] >= lo) & (c["value"] < lo + width)]
        n, hits = int(g["n"].sum()), float((g["exact_match"].fillna(0) * g["n"]).sum())
        t.add_row(str(lo) if width == 1 else f"{lo}..{lo + width - 1}", f"{hits / n:.2%}" if n else "-", str(n))
    console.print(t)
    console.print(f"written: {', '.join(result['files'])}")


def ood_name(options):
    """'ood' and the OOD options asked for: {'ood_min_len': 61, 'ood_max_len': 70} -> 'ood len 61..70',
    {'ood_bits': 20} -> 'ood bits 20'."""
    lo = {k[8:]: v for k, v in options.items() if k.startswith("ood_min_")}
    hi = {k[8:]: v for k, v in options.items() if k.startswith("ood_max_")}
    other = {k[4:]: v for k, v in options.items() if k.startswith("ood_") and not k.startswith(("ood_min_", "ood_max_"))}
    return " ".join(["ood"] + [f"{n} {lo.get(n, '')}..{hi.get(n, '')}" for n in sorted(lo.keys() | hi.keys())]
                    + [f"{n} {v}" for n, v in sorted(other.items())])


def show(result):
    runtime = "" if result.get("runtime", "torch") == "torch" else f", {result['runtime']} runtime"
    t = Table(title=f"{result['run']}  ({result['arch']}, {result['task']}{runtime})")
    for c in ("split", "exact match", "token accuracy", "edit distance", "n"):
        t.add_column(c, justify="right" if c != "split" else "left")
    ood_label = ood_name(result.get("ood_options", {}))
    for split in ("test", "ood"):
        r = result[split]
        t.add_row(split if split == "test" else ood_label, f"{r['exact_match']:.2%}", f"{r['token_accuracy']:.2%}",
                  f"{r['edit_distance']:.3f}", str(r["n"]))
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


def show_leaderboard(root):
    """Every saved run ranked (scoring.leaderboard), and those that cannot be loaded apart."""
    df, broken = scoring.leaderboard(root)
    t = Table(title=f"leaderboard ({len(df)} runs)")
    for c in df.columns:
        t.add_column(c)
    for r in df.itertuples(index=False):
        t.add_row(*[f"{v:.2%}" if k.endswith("_em") and v is not None and v == v else
                    f"{v:.0f}" if isinstance(v, float) and v == v else str(v) for k, v in zip(df.columns, r)])
    console.print(t)
    if broken:
        b = Table(title=f"not ranked: {len(broken)} runs that cannot be loaded")
        b.add_column("run")
        b.add_column("reason")
        for r in broken:
            b.add_row(r["run"], r["reason"])
        console.print(b)
    console.print(f"written: {root}/leaderboard.csv, {root}/leaderboard.md")


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
            show_leaderboard(a.models_dir)
            return 0
        if a.per_value < 1:
            raise SettingsError(f"--per-value must be at least 1, got {a.per_value}")
        if a.compare:
            console.print(f"written: {scoring.compare(a.compare, a.models_dir, device, a.per_value, a.runtime)}")
            return 0
        if not (a.run or a.latest or sys.stdin.isatty()):
            p.print_usage(sys.stderr)
            fail("give a run folder, --latest or --all (no terminal to ask on)")
        path = pick_run(a.run, a.latest, a.models_dir, "evaluate")
        if a.curve:
            show_curve(scoring.curve_run(path, device, a.per_value, a.runtime))
        else:
            show(scoring.evaluate_run(path, device, ood, a.runtime))
    except UserError as e:
        fail(str(e))
    except OSError as e:  # a full disk or a read-only run folder: write_text left nothing behind
        fail(f"could not write {e.filename or 'a result file'} ({e.strerror or e}); nothing was left half-written")
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
