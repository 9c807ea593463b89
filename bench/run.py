"""The benchmark: architectures x tasks x budgets x seeds, through training.train and scoring.

    python -m bench                 # the full matrix (hours on 2 cores); resumes where it stopped
    python -m bench --quick         # a few minutes: every architecture, 15s, bracket and a Chomsky task of each level
    python -m bench --only chomsky  # the Chomsky-hierarchy matrix (docs/chomsky.md): 15 tasks x 7 architectures x 3 seeds
    python -m bench --only bracket-1min --archs gru,gpt
    python -m bench --quick --archs gru --budget 3s   # any preset with another budget
    python -m bench --only bracket-1min --archs gru --again    # run done cells again; the new rows count
    python -m bench --report        # rebuild the report and pictures from the results so far
    python -m bench --only bracket-1min --seeds 0 --device cuda   # one seed of each, on the GPU
    python -m bench --task reverse --alphabet 01 --archs gru,tra --budget 1min --seeds 0,1   # any registered task

One run at a time (the machine is the instrument). Every run appends a row to
bench/results/runs.csv (accuracy, OOD accuracy, steps, samples/s, share of the device's float32
matmul peak, GPU utilisation, wall time, CPU time per wall second, load average, seed, device,
versions); the report bench/results/README.md and its pictures are rebuilt after each run. Runs
already in the CSV for the device are skipped, so an interrupted benchmark continues where it
stopped; a GPU's rows are kept and reported apart from the CPU's (and from another GPU's).
`--commit` commits the results after each run (a session can end at any time). `--task NAME`
with the task's options (the flags of train.py) benchmarks any registered task as a preset of its
own, named task-NAME (and a short hash of the options and sizes when they are not the defaults).
"""
import os
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import hashlib
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
import torch

import archs
import dataset as D
import devices
import scoring
from archs.common import POS_KINDS
from bench import chomsky
from bench.common import RESULTS, add_commit_arg, git_commit
from cli import Parser, fail
from errors import UserError
from files import check_writable
from runs import machine, versions
from settings import Budget, Request, resolve
from tasks import make_task
from training import train

RUNS_DIR = os.path.join("bench", "runs")
ALL = list(archs.ARCHS)

@dataclass
class Preset:
    task: str
    options: dict
    budget: str
    seeds: list
    goal: str  # what it measures, and the target
    settings: dict = field(default_factory=dict)  # settings.Request's for every architecture ("model": {...} too)
    ood2: dict = field(default_factory=dict)  # a second OOD range each run is also scored on (evaluate.py --ood-...)
    sizes: dict = field(default_factory=dict)  # split sizes or data seed other than dataset.py's (train_size=..., seed=...)
    archs: list = field(default_factory=lambda: list(ALL))  # the architectures it compares
    curve: int = D.CURVE_SIZE  # problems per value of each run's accuracy curve (evaluate.py --curve); 0: none
    study: str = ""  # presets of one study are also reported side by side (a table of where each falls off)
    curve_values: list = field(default_factory=list)  # the values the curve scores (default: 1 to 4x training)
    arch_settings: dict = field(default_factory=dict)  # model settings of one architecture: {"ber": {"n_slots": 81}}


BRACKET_STUDY = "bracket, 8000 steps: position encodings and levers"
POS_STUDY = {f"pos-bracket-{pos}": Preset("bracket", {}, "8000steps", [0, 1, 2],
                                          f"position encoding {pos} on bracket closing (lengths 1..30): how far past 30 it "
                                          "holds 99% and 90% (accuracy curve up to 120)", settings={"model": {"pos": pos}},
                                          ood2={"ood_min_len": 61, "ood_max_len": 120}, archs=["tra", "ber", "gpt"],
                                          study=BRACKET_STUDY) for pos in POS_KINDS}
LEVERS = {"curriculum": ({"curriculum": 0.5}, "a length curriculum (train.py --curriculum 0.5)", [0, 1, 2]),
          "deep": ({"model": {"n_layer": 4}}, "four layers (a screening: one seed)", [0]),
          "wide": ({"model": {"d_model": 128}}, "width 128 (a screening: one seed)", [0])}
LEVER_STUDY = {f"lever-bracket-{name}": Preset("bracket", {}, "8000steps", seeds,
                                               f"{what} on bracket closing, each architecture's defaults otherwise: against "
                                               "its default position encoding's row of the position study, how far past 30 "
                                               "it holds 99% and 90%", settings=settings,
                                               ood2={"ood_min_len": 61, "ood_max_len": 120}, archs=["tra", "ber", "gpt"],
                                               study=BRACKET_STUDY) for name, (settings, what, seeds) in LEVERS.items()}


# The Chomsky-hierarchy benchmark (Deletang et al. 2023; docs/chomsky.md): each task trained on
# lengths 1..40 for a minute, scored on lengths 41..500 (every tenth length and 500, CHOMSKY_PER_LENGTH
# problems each), three seeds. ber writes into as many answer slots as the longest training answer
# and its <eos> need (chomsky_slots): the paper's encoder is given |y| blank tokens, ours must end
# its answer itself and cannot write past its slots.
CHOMSKY_LEVELS = {"regular": ["even_pairs", "modular_arithmetic", "parity_check", "cycle_navigation"],
                  "dcf": ["stack_manipulation", "reverse_string", "modular_arithmetic_brackets", "solve_equation"],
                  "cs": ["duplicate_string", "missing_duplicate_string", "odds_first", "binary_addition",
                         "binary_multiplication", "compute_sqrt", "bucket_sort"]}
CHOMSKY_LENGTHS = [*range(41, 500, 10), 500]
CHOMSKY_QUICK = {"regular": ["parity_check"], "dcf": ["stack_manipulation"], "cs": ["duplicate_string"]}
CHOMSKY_PER_LENGTH = 10
CHOMSKY_TASKS = {name: ("reverse", {"alphabet": "01", "max_len": 40, "ood_min_len": 41, "ood_max_len": 500})
                 if name == "reverse_string" else (name, {}) for names in CHOMSKY_LEVELS.values() for name in names}


def chomsky_slots(task: str, options: dict) -> dict:
    """ber's answer slots on a Chomsky task: the longest answer of an input of the longest
    training length (40), and its <eos>."""
    return {"ber": {"n_slots": make_task(task, {**options, "ood_min_len": 40, "ood_max_len": 40}).max_target_len() + 1}}


CHOMSKY = {f"chomsky-{name}": Preset(task, options, "1min", [0, 1, 2],
                                     f"{name} ({level}): trained on lengths 1..40, scored on 41..500 (docs/chomsky.md)",
                                     sizes={"ood_size": 200}, curve=CHOMSKY_PER_LENGTH, study="chomsky",
                                     curve_values=CHOMSKY_LENGTHS, arch_settings=chomsky_slots(task, options))
           for level, names in CHOMSKY_LEVELS.items() for name in names for task, options in [CHOMSKY_TASKS[name]]}

PRESETS = {
    "bracket-1min": Preset("bracket", {}, "1min", [0, 1, 2], "bracket closing, inputs 1..30: every architecture >= 99%, best >= 99.9%"),
    "bracket-10min": Preset("bracket", {}, "10min", [0, 1, 2], "bracket closing: every architecture >= 99.9%; OOD 31..60: every >= 99%; "
                            "OOD2 61..120: best >= 95%", ood2={"ood_min_len": 61, "ood_max_len": 120}),
    "arith-addsub-10min": Preset("arith", {"ops": "+-", "digits": 3, "format": "reversed"}, "10min", [0, 1, 2],
                                 "+ and - up to 3 digits, reversed answers: best >= 99%; OOD (4 digits) best >= 90%; "
                                 "OOD2: 5-6 digits", ood2={"ood_min_digits": 5, "ood_max_digits": 6}),
    "arith-beginner-10min": Preset("arith", {"ops": "+-*/", "digits": 2, "negatives": True, "decimals": True}, "10min", [0],
                                   "four operations, 1-2 digits, negatives, decimals: best >= 99%"),
    "arith-four-10min": Preset("arith", {"ops": "+-*/", "digits": 2, "negatives": True, "decimals": True, "format": "scratch"},
                               "10min", [0, 1, 2], "the beginner set with what won the lever study: scratch-pad answers, "
                               "1,000,000 training problems: best >= 99%, every architecture >= 95%, each operation >= 98%",
                               sizes={"train_size": 1_000_000}),
    "reverse-1min": Preset("reverse", {}, "1min", [0, 1, 2], "string reversal, lengths 1..20: every architecture >= 99%; "
                           "OOD 21..40 and OOD2 41..80: how far each carries", ood2={"ood_min_len": 41, "ood_max_len": 80}),
    **POS_STUDY,
    **LEVER_STUDY,
    **CHOMSKY,
}
QUICK = {"quick-bracket-15s": Preset("bracket", {}, "15s", [0], "smoke test", curve=5),
         # the Chomsky protocol in a few minutes: a task of each level, three lengths past training
         **{f"quick-chomsky-{name}": Preset(name, {}, "15s", [0], "smoke test of the Chomsky protocol", sizes={"ood_size": 20},
                                           curve=3, study="quick-chomsky", curve_values=[41, 81, 161],
                                           arch_settings=chomsky_slots(name, {}))
            for names in CHOMSKY_QUICK.values() for name in names}}
CHOMSKY_STUDIES = {"chomsky": CHOMSKY_LEVELS, "quick-chomsky": CHOMSKY_QUICK}  # reported in the paper's layout
COLUMNS = ["preset", "arch", "budget", "seed", "test_em", "ood_em", "ood2_em", "steps", "samples_per_s", "params",
           "peak_share", "gpu_util", "wall_time", "train_time", "val_time", "cpu_per_wall", "load_start", "load_end",
           "matmul_gflops", "device", "run", "date", "torch", "config", "groups", "curve"]


def matmul_peak(device="cpu", seconds=2.0, n=1024) -> float:
    """Float32 GFLOP/s of a large square matmul on the device the runs train on, now (best of
    repeated runs): the CPU's, or on a GPU the GPU's (n=4096, waiting for each product)."""
    device = torch.device(device)
    n = 4096 if device.type == "cuda" else n
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *_: None)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    best, end = 0.0, time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        a @ b
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


class GpuUse:
    """The GPU's utilisation while a run trains: NVML's share of time in which a kernel ran (what
    nvidia-smi shows), read every `every` seconds in a thread. mean(start, end) averages the
    readings between two times; None on the CPU, or where NVML cannot be read (pynvml missing)."""

    def __init__(self, device, read=None, every=0.5):
        device = torch.device(device)
        if read is None and device.type == "cuda":
            read = lambda: torch.cuda.utilization(device)  # noqa: E731
        self.read = read
        self.every, self.samples, self.stop = every, [], threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="gpu-use")

    def _watch(self):
        while not self.stop.wait(self.every):
            try:
                self.samples.append((time.time(), float(self.read())))
            except Exception:  # no NVML (pynvml) or no such GPU: no readings, the column stays empty
                return

    def __enter__(self):
        if self.read is not None:
            self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def mean(self, start, end) -> float | None:
        got = [u for t, u in self.samples if start <= t <= end]
        return sum(got) / len(got) / 100 if got else None


def load_results() -> pd.DataFrame:
    path = os.path.join(RESULTS, "runs.csv")
    if not os.path.exists(path):
        return pd.DataFrame(columns=COLUMNS)
    df = with_device(pd.read_csv(path))
    return df.reindex(columns=[*COLUMNS, *(c for c in df.columns if c not in COLUMNS)])


def with_device(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with their device: those from before the column ran on the CPU."""
    return df.assign(device=df["device"].astype(object).fillna("cpu") if "device" in df else "cpu")


def series(arch: str, device: str) -> str:
    """How a report names an architecture's rows: `gpt` on the CPU, `gpt (NVIDIA H200)` on a GPU."""
    return arch if device == "cpu" else f"{arch} ({device.removeprefix('cuda: ')})"


def save_results(df):
    os.makedirs(RESULTS, exist_ok=True)
    tmp = os.path.join(RESULTS, ".runs.csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, os.path.join(RESULTS, "runs.csv"))


def task_preset(spec: D.DataSpec, budget: str, seeds: list) -> tuple[str, Preset]:
    """python -m bench --task NAME [options]: a preset of any registered task, named task-<problem set>."""
    sizes = {k: v for k, v in asdict(spec).items() if k not in ("task", "options") and v != getattr(D.DataSpec(), k)}
    p = Preset(spec.task, spec.options or {}, budget, seeds, f"--task {spec.task} {json.dumps(spec.options or {})}", sizes=sizes)
    return f"task-{problem_set(p)}", p


def request_of(p: Preset, arch: str, **where) -> Request:
    """What a preset asks for one architecture; where: seed, threads, device, models_dir, data_dir."""
    return Request(arch=arch, budget=p.budget, data=D.DataSpec(p.task, p.options or None, **p.sizes),
                   model={**p.settings.get("model", {}), **p.arch_settings.get(arch, {})},
                   **{k: v for k, v in p.settings.items() if k != "model"}, **where)


def run_cell(name, p: Preset, arch, seed, threads, device="auto", data_dir="data", tensorboard=False) -> dict:
    on = devices.choose(device)
    peak = matmul_peak(on)
    begin = time.time()
    with GpuUse(on) as use:
        m = train(request_of(p, arch, seed=seed, threads=threads, device=device, models_dir=RUNS_DIR, data_dir=data_dir,
                             tensorboard=tensorboard))
    if m["interrupted"]:  # Ctrl-C or SIGTERM: the run is saved, but a cut-short run is no benchmark row
        raise KeyboardInterrupt
    loop_start = begin + m["setup_time"]  # the training loop, its validation included
    ev = scoring.evaluate_run(m["run"], m["device"], data_dir=data_dir)
    ev2 = scoring.evaluate_run(m["run"], m["device"], p.ood2, data_dir=data_dir) if p.ood2 else None
    curve = scoring.curve_run(m["run"], m["device"], p.curve, values=p.curve_values or None, data_dir=data_dir) if p.curve else None
    return {"preset": name, "arch": arch, "budget": p.budget, "seed": seed, "test_em": ev["test"]["exact_match"],
            "ood_em": ev["ood"]["exact_match"], "ood2_em": ev2["ood"]["exact_match"] if ev2 else None,
            "steps": m["steps"], "samples_per_s": m["samples_per_s"],
            "params": m["params"], "peak_share": m["train_flops_estimate"] / max(1e-9, m["train_time"]) / (peak * 1e9),
            "gpu_util": use.mean(loop_start, loop_start + m["train_time"] + m["val_time"]),
            "wall_time": m["wall_time"], "train_time": m["train_time"], "val_time": m["val_time"],
            "cpu_per_wall": m["cpu_time_per_wall"], "load_start": m["loadavg_start"][0], "load_end": m["loadavg_end"][0],
            "matmul_gflops": peak, "device": devices.name_of(m["device"]), "run": m["run"], "date": m["created"],
            "torch": versions()["torch"], "config": json.dumps(settings(m["run"]), separators=(",", ":")),
            "groups": json.dumps({**groups(ev), **({"ood2": groups(ev2)["ood"]} if ev2 else {})}, separators=(",", ":")),
            "curve": curve_json(curve) if curve else None}


def curve_json(curve) -> str:
    """A run's accuracy curve as runs.csv keeps it: axis, training maximum, value -> (exact match,
    n), and value -> token accuracy (the Chomsky-hierarchy paper's score)."""
    c = curve["curve"]
    rounded = lambda x: None if x != x else round(x, 4)  # noqa: E731
    return json.dumps({"axis": curve["axis"], "trained": curve["trained"],
                       "em": {int(v): [rounded(em), int(n)] for v, em, n in zip(c["value"], c["exact_match"], c["n"])},
                       "acc": {int(v): rounded(acc) for v, acc in zip(c["value"], c["token_accuracy"])}},
                      separators=(",", ":"))


def holds(curve, level: float) -> float:
    """How far a run's curve (runs.csv JSON) holds exact match >= level: the largest value up to which
    every value scored (n > 0) reaches it; 0 when the first does not, NaN without a curve."""
    if not isinstance(curve, str):
        return float("nan")
    last = 0
    for v, (em, n) in sorted(((int(v), x) for v, x in json.loads(curve)["em"].items())):
        if n and em < level:
            break
        last = v
    return float(last)


TRAIN_KEYS = ("lr", "batch_size", "warmup", "weight_decay", "curriculum")  # the training settings a row records
ADDED_TRAIN_KEYS = {"curriculum": 0.0}  # training settings added since the first rows, as rows before them trained


def settings(run) -> dict:
    """The model config and the training settings that shaped the run, so rows made under other defaults show it."""
    with open(os.path.join(run, "config.json")) as f:
        c = json.load(f)
    model = {k: v for k, v in c["model"].items() if k != "vocab_size"}
    return {**model, **{k: c["train"].get(k, ADDED_TRAIN_KEYS.get(k)) for k in TRAIN_KEYS}}


def planned(p: Preset, arch) -> dict:
    """The settings a cell would train under now, as `settings` records them: a row made under
    other settings (defaults changed since) does not count as this cell's run."""
    s = resolve(request_of(p, arch))
    model = {k: v for k, v in s.model.items() if k != "vocab_size"}
    return {**model, **{k: getattr(s.train, k) for k in TRAIN_KEYS}}


def same_settings(recorded, plan: dict, arch) -> bool:
    """Whether a row's recorded settings (runs.csv's JSON) are the planned ones; a setting the row
    does not name (added since) counts as its default then: the architecture's Config default or
    its ADDED_TRAIN_KEYS value."""
    if not isinstance(recorded, str):
        return False
    recorded, base = json.loads(recorded), {**archs.defaults(arch), **ADDED_TRAIN_KEYS}
    return all(recorded.get(k, base.get(k)) == v for k, v in json.loads(json.dumps(plan)).items())


def pending(presets: dict, arch_list: list, df: pd.DataFrame, device: str = "cpu") -> tuple[list, list, int]:
    """Every cell (preset, Preset, arch, seed), those still to run on `device` (devices.name_of's), and
    how many of those ran before. A cell counts as run when a row of it on that device trained under
    the planned settings and was scored on every split the preset scores now (a row from before a
    preset gained its OOD2 range, or its accuracy curve, lacks it). A CPU row does not stand for a GPU run, nor one GPU for another."""
    cells = [(name, p, arch, seed) for name, p in presets.items() for seed in p.seeds for arch in arch_list if arch in p.archs]
    plans = {(name, arch): planned(p, arch) for name, p, arch, _ in cells}
    ran = {}  # (preset, arch, budget, seed) -> (settings, scored on OOD2) of its rows on this device
    df = with_device(df)
    for r in df[df["device"] == device].itertuples():
        ran.setdefault((r.preset, r.arch, r.budget, int(r.seed)), []).append(
            (r.config, pd.notna(r.ood2_em), isinstance(getattr(r, "curve", None), str)))
    todo, stale = [], 0
    for name, p, arch, seed in cells:
        before = ran.get((name, arch, p.budget, seed), [])
        if not any(same_settings(c, plans[name, arch], arch) and (ood2 or not p.ood2) and (curve or not p.curve)
                   for c, ood2, curve in before):
            todo.append((name, p, arch, seed))
            stale += bool(before)
    return cells, todo, stale


def groups(ev) -> dict:
    """Exact match per group of each breakdown (length, depth, op, digits), test and OOD apart, for
    the per-group picture and table; kept in runs.csv so the report never needs the run folders."""
    return {split: {key: {g: round(v["exact_match"], 4) for g, v in by.items()}
                    for key, by in ev[split]["breakdown"].items()} for split in ("test", "ood")}


# ----------------------------------------------------------------------------- report

def latest_settings(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of each (preset, budget, device, arch) made under its latest row's settings, one per seed
    (the latest: a cell run again, e.g. for a split its preset scores since, replaces its row), and
    the others (made before a default changed, or replaced): a median mixes no two configurations
    and counts no seed twice."""
    keep, df = [], with_device(df)
    for (_, _, _, arch), g in df.groupby(["preset", "budget", "device", "arch"], sort=False):
        latest = g["config"].iloc[-1]
        plan = json.loads(latest) if isinstance(latest, str) else None
        same = g[[plan is None or same_settings(c, plan, arch) for c in g["config"]]]
        keep += list(same.drop_duplicates("seed", keep="last").index)
    return df.loc[sorted(keep)], df.drop(index=keep)


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Medians per (preset, budget, arch, device): a preset run under --budget, and runs on a GPU, are reported apart."""
    curves = df["curve"] if "curve" in df else pd.Series([None] * len(df), index=df.index)
    df = df.assign(holds_99=curves.map(lambda c: holds(c, 0.99)), holds_90=curves.map(lambda c: holds(c, 0.90)))
    g = df.groupby(["preset", "budget", "arch", "device"], sort=False)
    out = g.agg(holds_99=("holds_99", "median"), holds_90=("holds_90", "median"), runs=("test_em", "size"),
                test_em_median=("test_em", "median"), test_em_min=("test_em", "min"),
                test_em_max=("test_em", "max"), ood_em=("ood_em", "median"), ood2_em=("ood2_em", "median"),
                steps=("steps", "median"),
                samples_per_s=("samples_per_s", "median"), peak_share=("peak_share", "median"),
                gpu_util=("gpu_util", "median"), cpu_per_wall=("cpu_per_wall", "median"),
                load=("load_start", "median")).reset_index()
    return out[[c for c in out.columns if not c.startswith("holds_")] + ["holds_99", "holds_90"]]


def picture(preset: str, budget: str, known: dict, kind: str = "") -> str:
    """The file name of a picture of one preset's rows at one budget: `<preset><kind>.png` at the
    preset's own budget, `<preset>-<budget><kind>.png` for its rows under --budget (kept apart, as
    their tables are)."""
    return f"{preset}{'' if own_budget(preset, budget, known) else '-' + budget}{kind}.png"


def own_budget(preset: str, budget: str, known: dict) -> bool:
    """Whether rows at this budget are the preset's own (not a --budget run of it)."""
    return preset not in known or known[preset].budget == budget


def problem_set(p: Preset) -> str:
    """A preset's problems, whatever its budget: its task, and a short hash of its options and
    sizes when they are not the task's defaults (`bracket`, `arith-3f9a1c`)."""
    if not p.options and not p.sizes:
        return p.task
    return f"{p.task}-{hashlib.sha256(json.dumps([p.options, p.sizes], sort_keys=True).encode()).hexdigest()[:6]}"


def budget_plots(df: pd.DataFrame, known: dict) -> list[str]:
    """accuracy_vs_budget-<problem set>.png: test exact match against the time budget, for each
    problem set that presets (not studies) train at two budgets or more."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    made = []
    timed = {n: p for n, p in known.items() if not p.study and Budget.parse(p.budget).unit == "s"}
    for name in dict.fromkeys(problem_set(p) for p in timed.values()):
        rows = df[df["preset"].isin([n for n, p in timed.items() if problem_set(p) == name])]
        rows = rows[rows["budget"].map(lambda b: Budget.parse(b).unit == "s").astype(bool)]  # steps have no place on a time axis
        if rows["budget"].nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for arch, g in rows.groupby("series"):
            pts = g.assign(s=g["budget"].map(lambda b: Budget.parse(b).amount)).groupby("s")["test_em"].median()
            ax.plot(pts.index, pts.values * 100, marker="o", label=arch)
        ax.set_xscale("log")
        ax.set_xlabel("training budget (s, log)")
        ax.set_ylabel("test exact match (%)")
        ax.set_title(f"{name}: accuracy versus budget")
        ax.grid(alpha=0.3)
        ax.legend()
        made.append(save(fig, f"accuracy_vs_budget-{name}.png"))
    return made


def plots(df: pd.DataFrame, known: dict) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for (preset, budget), g in df.groupby(["preset", "budget"], sort=False):
        name = picture(preset, budget, known)
        first = g.sort_values("seed", kind="stable").drop_duplicates("series")
        if not any(os.path.isdir(r) for r in first["run"]) and os.path.exists(os.path.join(RESULTS, name)):
            made.append(name)  # its run folders are gone (a fresh clone): keep the picture made from them
            continue
        learning = [r for r in first.itertuples() if os.path.exists(os.path.join(r.run, "curve.csv"))]
        if learning:
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        else:  # drawn from runs.csv alone: no learning curves to show
            fig, ax2 = plt.subplots(figsize=(7, 4))
        per_arch = {r.series: row_groups(r) for r in first.itertuples()}
        keys = [k for v in per_arch.values() if v for k in v["test"]]  # the breakdowns; the task's axis first
        axis = make_task(known[preset].task, known[preset].options or None).axis().name if preset in known else None
        key = axis if axis in keys else next(iter(keys), None)
        test_x = sorted({x for v in per_arch.values() if v for x in v["test"].get(key, {})})
        xs = test_x + sorted({x for v in per_arch.values() if v for x in v["ood"].get(key, {})} - set(test_x))
        for r in learning:
            c = pd.read_csv(os.path.join(r.run, "curve.csv"))
            ax1.plot(c["train_s"], c["val_em"] * 100, marker=".", label=r.series)
        for r in first.itertuples():
            if per_arch[r.series]:
                pts = {**per_arch[r.series]["ood"].get(key, {}), **per_arch[r.series]["test"].get(key, {})}
                ax2.plot(range(len(xs)), [pts.get(x, float("nan")) * 100 for x in xs], marker="o", label=r.series)
        if len(xs) > len(test_x):  # everything right of the line lies outside the training distribution
            ax2.axvspan(len(test_x) - 0.5, len(xs) - 0.5, color="grey", alpha=0.12, lw=0)
            ax2.axvline(len(test_x) - 0.5, color="grey", ls="--")
            ax2.text(len(test_x) - 0.4, 0.03, "out of distribution", color="grey", fontsize=8,
                     transform=ax2.get_xaxis_transform())
        ax2.set_xticks(range(len(xs)), xs)
        title = preset if own_budget(preset, budget, known) else f"{preset}, {budget}"
        if learning:
            ax1.set_xlabel("training seconds")
            ax1.set_ylabel("validation exact match (%)")
            ax1.set_title(f"{title}: learning curves (seed {first['seed'].min()})")
        ax2.set_xlabel(str(key))
        ax2.set_ylabel("exact match (%)")
        ax2.set_title("test, then out-of-distribution, per group" if learning
                      else f"{title} (seed {first['seed'].min()}): exact match per group")
        ax2.tick_params(axis="x", rotation=45)
        for ax in fig.axes:
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        made.append(save(fig, name))
    return made


def curve_plots(df: pd.DataFrame, known: dict) -> list[str]:
    """<preset>-curve.png: each series' accuracy curve (median over seeds at each value), one
    picture per preset and budget."""
    made = []
    for (preset, budget), g in df[df["curve"].map(lambda c: isinstance(c, str))].groupby(["preset", "budget"], sort=False):
        curves, axis, trained = {}, None, None
        for name, rows in g.groupby("series", sort=False):
            parsed = [json.loads(c) for c in rows["curve"]]
            axis, trained = parsed[0]["axis"], parsed[0]["trained"]
            per_value = pd.DataFrame([{"value": int(v), "exact_match": em} for c in parsed for v, (em, n) in c["em"].items() if n])
            curves[f"{name} ({len(parsed)} seed{'s' * (len(parsed) > 1)})"] = \
                per_value.groupby("value", as_index=False)["exact_match"].median()
        name = picture(preset, budget, known, "-curve")
        title = preset if own_budget(preset, budget, known) else f"{preset}, {budget}"
        label = make_task(known[preset].task, known[preset].options or None).axis().label if preset in known else axis
        scoring.plot_curves(curves, label, trained, os.path.join(RESULTS, name), f"{title}: exact match by {label} (median over seeds)")
        made.append(name)
    return made


def save(fig, name):
    import matplotlib.pyplot as plt
    path = os.path.join(RESULTS, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return name


def row_groups(r) -> dict | None:
    """Per-group exact match of one runs.csv row: its `groups` column, else its run folder's summary."""
    if isinstance(getattr(r, "groups", None), str):
        return json.loads(r.groups)
    summ = scoring.latest_summary(r.run) if os.path.isdir(r.run) else None
    return groups(summ) if summ else None


def report(df: pd.DataFrame, presets: dict, readme: str | None = None):
    """bench/results/README.md and its pictures from the rows; with readme, that file's results block too."""
    os.makedirs(RESULTS, exist_ok=True)
    df = df.reindex(columns=list(dict.fromkeys([*COLUMNS, *df.columns])))  # rows from before a column: empty
    df, earlier = (d.assign(series=[series(a, v) for a, v in zip(d["arch"], d["device"])]) for d in latest_settings(df))
    known = {**presets, **QUICK, **PRESETS}  # the registry's budget wins over a --budget run's
    pics = plots(df, known) + curve_plots(df, known) + budget_plots(df, known)
    chomsky.level_curves(df, {n: p for n, p in known.items() if p.study == "chomsky"}, CHOMSKY_LEVELS, RESULTS)
    mach = machine()
    peaks = "; ".join(f"{g['matmul_gflops'].median():,.0f} GFLOP/s on "
                      + ("the CPU" if dev == "cpu" else dev.removeprefix("cuda: ")) for dev, g in df.groupby("device", sort=False))
    lines = ["# Benchmark results", "",
             f"Updated {time.strftime('%Y-%m-%d %H:%M')} on {mach['processor']}, {mach['cpu_count']} cores, "
             f"torch {versions()['torch']}; float32 matmul peak of the device a run trains on, measured before each run "
             f"(median {peaks}). Exact match on the frozen test set (2,000 problems) "
             "and the out-of-distribution split, unconstrained greedy decoding. `peak` is the estimated training "
             "FLOP rate (6 x parameters x padded tokens per second) as a share of that matmul peak. "
             "`cpu/wall` and `load` show how busy the machine was; on a GPU (rows named after it) `gpu_util` is the "
             "share of the training loop's time in which a kernel ran (NVML's utilisation, read every 0.5 s).", ""]
    table = summary_table(df)
    table["arch"] = [series(a, v) for a, v in zip(table["arch"], table["device"])]
    order = [*PRESETS, *QUICK, *presets]
    sections = sorted(table.groupby(["preset", "budget"], sort=False), key=lambda kv: (
        order.index(kv[0][0]) if kv[0][0] in order else len(order), not own_budget(*kv[0], known)))
    for (preset, budget), g in sections:  # in registry order, each preset's own budget before its --budget runs
        p = known.get(preset)
        pic, curve = picture(preset, budget, known), picture(preset, budget, known, "-curve")
        lines += [f"## {preset}" + (f", trained for {budget}" if not own_budget(preset, budget, known) else ""), "",
                  f"Target: {p.goal if p else ''}", ""]
        show = g.drop(columns=["preset", "budget", "device"]).copy()
        show = show.drop(columns=[c for c in ("ood2_em", "gpu_util", "holds_99", "holds_90") if show[c].isna().all()])
        for c in ("holds_99", "holds_90"):
            if c in show:
                show[c] = show[c].map(lambda v: "-" if v != v else f"{v:.0f}")
        for c in ("test_em_median", "test_em_min", "test_em_max", "ood_em", "ood2_em", "peak_share", "gpu_util"):
            if c in show:
                show[c] = show[c].map(lambda v: "-" if v != v else f"{v:.2%}")
        for c in ("steps", "samples_per_s"):
            show[c] = show[c].map(lambda v: f"{v:.0f}")
        for c in ("cpu_per_wall", "load"):
            show[c] = show[c].map(lambda v: f"{v:.2f}")
        lines += [show.to_markdown(index=False), ""]
        rows = df[(df["preset"] == preset) & (df["budget"] == budget)]
        first = rows.drop_duplicates("series")
        configs = first["config"] if "config" in first else [None] * len(first)
        lines += ["Settings: " + "; ".join(f"`{a}` {settings_text(c)}" for a, c in zip(first["series"], configs)) + ".", ""]
        before = earlier[(earlier["preset"] == preset) & (earlier["budget"] == budget)]
        if len(before):
            lines += ["Not in this table, made under earlier settings or run again since (in runs.csv): " + "; ".join(
                f"`{a}` {len(b)} run{'s' * (len(b) > 1)}, test {b['test_em'].median():.2%} (median)"
                for a, b in before.groupby("series", sort=False)) + ".", ""]
        by_op = per_group(rows, "op")
        if by_op is not None:
            lines += ["Test exact match per operation (median over seeds):", "",
                      by_op.map(lambda v: f"{v:.2%}").to_markdown(), ""]
        if pic in pics:
            lines += [f"![{preset}]({pic})", ""]
        if curve in pics:
            lines += ["Exact match by length (digit count), 1 to 4x the training maximum; `holds_99` / `holds_90` above: "
                      "the longest up to which every value reaches 99% / 90% (median over seeds).", "",
                      f"![{preset} curve]({curve})", ""]
    lines += study_tables(table, known, df)
    for pic in (p for p in pics if p.startswith("accuracy_vs_budget-")):
        name = pic.removeprefix("accuracy_vs_budget-").removesuffix(".png")
        lines += [f"## Accuracy versus budget ({name})", "", f"![accuracy versus budget, {name}]({pic})", ""]
    lines += ["Every run: [runs.csv](runs.csv).", ""]
    with open(os.path.join(RESULTS, "README.md"), "w") as f:
        f.write("\n".join(lines))
    if readme:
        write_readme_tables(df, readme)
        chomsky.write_doc(chomsky.table(df, {n: p for n, p in known.items() if p.study == "chomsky"}, CHOMSKY_LEVELS),
                          CHOMSKY_DOC)


def study_tables(table: pd.DataFrame, known: dict, df: pd.DataFrame) -> list[str]:
    """For each study (presets with the same `study`), a table side by side: an architecture per
    row, a preset per column, each cell holds_99 / holds_90 / OOD2 exact match (medians) at the
    preset's own budget (its rows under --budget are reported apart, not mixed in); known: report's
    presets. The Chomsky studies get the paper's layout instead (bench/chomsky.py, from the rows df)."""
    lines = []
    for study in dict.fromkeys(p.study for p in known.values() if p.study):
        if study in CHOMSKY_STUDIES:
            found = chomsky.table(df, {n: p for n, p in known.items() if p.study == study}, CHOMSKY_STUDIES[study])
            lines += [f"## Study: {study}", "", *found] if found else []
            lines += [f"![{level}: token accuracy by length]({pic})" for level in CHOMSKY_STUDIES[study]
                      if found and os.path.exists(os.path.join(RESULTS, pic := chomsky.curve_picture(level, study)))] + [""] * bool(found)
            continue
        names = [n for n, p in known.items() if p.study == study and n in set(table["preset"])]
        rows = table[[p in names and b == known[p].budget for p, b in zip(table["preset"], table["budget"])]]
        if rows.empty:
            continue
        fmt = lambda v, pct=False: "-" if v != v else f"{v:.1%}" if pct else f"{v:.0f}"  # noqa: E731
        cells = {(r.arch, r.preset): f"{fmt(r.holds_99)} / {fmt(r.holds_90)} / {fmt(r.ood2_em, True)}" for r in rows.itertuples()}
        t = pd.DataFrame([{"arch": a, **{n: cells.get((a, n), "-") for n in names}} for a in dict.fromkeys(rows["arch"])])
        lines += [f"## Study: {study}", "", "Each cell: the length up to which every length reaches 99% / 90% exact match, "
                  "and the OOD2 exact match (medians over seeds).", "", t.to_markdown(index=False), ""]
    return lines


README = "README.md"
CHOMSKY_DOC = os.path.join("docs", "chomsky.md")
README_BEGIN = "<!-- results: written by python -m bench --report from bench/results/runs.csv -->"
README_END = "<!-- end of results -->"


def readme_tables(df: pd.DataFrame) -> str:
    """One table per task for the README: an architecture per row (a GPU's rows apart), a preset
    per column, each cell the test / OOD exact match (medians over the seeds of the latest settings)."""
    df, _ = latest_settings(df.reindex(columns=list(dict.fromkeys([*COLUMNS, *df.columns]))))
    table = summary_table(df)
    table["series"] = [series(a, v) for a, v in zip(table["arch"], table["device"])]
    out = []
    for task in dict.fromkeys(p.task for p in PRESETS.values()):
        names = [n for n, p in PRESETS.items() if p.task == task and not p.study and n in set(table["preset"])]
        cells = {}
        for name in names:
            rows = table[(table["preset"] == name) & (table["budget"] == PRESETS[name].budget)]
            for r in rows.itertuples():
                ood = "-" if r.ood_em != r.ood_em else f"{r.ood_em:.2%}"
                cells.setdefault(r.series, {})[name] = f"{r.test_em_median:.2%} / {ood}"
        if cells:
            arch_of = lambda s: s.split(" ")[0]  # noqa: E731 -- `gpt (NVIDIA H200)` -> gpt
            order = sorted(cells, key=lambda s: (arch_of(s) not in ALL, ALL.index(arch_of(s)) if arch_of(s) in ALL else 0, s))
            t = pd.DataFrame.from_dict(cells, orient="index").reindex(index=order, columns=names).fillna("-")
            drawn = [n for n in names if ((df["preset"] == n) & (df["budget"] == PRESETS[n].budget) & df["curve"].notna()).any()]
            curves = (f"; exact match by {make_task(task).axis().label}, 1 to 4x training: " + ", ".join(
                f"[{n}]({RESULTS}/{picture(n, PRESETS[n].budget, PRESETS, '-curve')})".replace(os.sep, "/") for n in drawn)
                if drawn else "")
            out += [f"**{task}**: test / OOD exact match{curves}", "", t.to_markdown(), ""]
    suite = chomsky.summary(df, {n: p for n, p in PRESETS.items() if p.study == "chomsky"}, CHOMSKY_LEVELS)
    if suite:
        drawn = [level for level in CHOMSKY_LEVELS if os.path.exists(os.path.join(RESULTS, chomsky.curve_picture(level)))]
        curves = ("; token accuracy by length, per level: " + ", ".join(
            f"[{level}]({RESULTS}/{chomsky.curve_picture(level)})".replace(os.sep, "/") for level in drawn)) if drawn else ""
        out += ["**the Chomsky hierarchy** (trained on lengths 1..40, scored on 41..500): tasks solved (the paper's score >= 90: "
                "token accuracy, best seed) of those run, and the paper's count on the same tasks where its copy shows them "
                f"(by task: [docs/chomsky.md](docs/chomsky.md)){curves}", "", *suite]
    return "\n".join(out).strip() + "\n"


def write_readme_tables(df: pd.DataFrame, path: str = README) -> bool:
    """Replace the README's results block (between README_BEGIN and README_END) with readme_tables;
    False when there is no such block (a bench run outside the repository)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{README_BEGIN}\n{readme_tables(df)}{README_END}{tail}")
    return True


def settings_text(config) -> str:
    if not isinstance(config, str):
        return "not recorded (a row from before settings were kept)"
    return ", ".join(f"{k}={v}" for k, v in json.loads(config).items())


def per_group(rows: pd.DataFrame, key: str) -> pd.DataFrame | None:
    """arch x group table of test exact match (median over seeds) for one breakdown key, or None;
    an architecture's rows on a GPU apart (by `series`, where the rows have it)."""
    cells = [{"arch": getattr(r, "series", r.arch), "group": grp, "em": em} for r in rows.itertuples()
             for grp, em in ((row_groups(r) or {"test": {}})["test"].get(key) or {}).items()]
    if not cells:
        return None
    t = pd.DataFrame(cells).pivot_table(index="arch", columns="group", values="em", aggfunc="median", sort=False)
    return t.rename_axis(index=None, columns=None)


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--quick", action="store_true", help="every architecture for 15s on bracket and on a Chomsky task of each "
                                                        "level (--only quick-bracket-15s for the bracket alone)")
    studies = sorted({p.study for p in PRESETS.values() if p.study} | {p.study for p in QUICK.values() if p.study})
    p.add_argument("--only", help=f"comma-separated presets or studies: {', '.join(PRESETS)}; {', '.join(studies)}")
    p.add_argument("--archs", default=",".join(ALL), help="comma-separated architectures (default all)")
    p.add_argument("--budget", help="train every run of the chosen presets for this budget instead (e.g. 3s, 30000steps)")
    p.add_argument("--seeds", help="comma-separated seeds to run instead of each preset's (e.g. 0; default: the "
                                   "preset's, 0,1,2 for most)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda; rows are kept and "
                                                    "reported per device (default auto)")
    p.add_argument("--again", action="store_true", help="run the chosen cells even where they ran (e.g. on a quieter "
                                                        "machine); the new row replaces the old in the report")
    p.add_argument("--report", action="store_true", help="only rebuild the report from runs.csv")
    p.add_argument("--tensorboard", action="store_true", help="each run also gets TensorBoard event files "
                                                              "(tensorboard --logdir bench/runs)")
    add_commit_arg(p)
    D.add_data_args(p, task_default=None)  # --task NAME and its options: any registered task, as a preset of its own
    a = p.parse_args(argv)
    presets = QUICK if a.quick else PRESETS
    if a.only:  # presets by name, or every preset of a study (chomsky)
        chosen = set(a.only.split(","))
        unknown = chosen - set(presets) - {p.study for p in presets.values()}
        if unknown:
            p.error(f"unknown preset {sorted(unknown)[0]!r}; choose from {', '.join(presets)}")
        presets = {k: v for k, v in presets.items() if k in chosen or v.study in chosen}
    if a.seeds and not re.fullmatch(r"\d+(,\d+)*", a.seeds):
        p.error(f"--seeds expects whole numbers separated by commas, e.g. 0,1,2; got {a.seeds!r}")
    try:
        arch_list = [archs.resolve(x) for x in a.archs.split(",")]
        if a.budget:
            Budget.parse(a.budget)
        device = devices.name_of(devices.choose(a.device))
        if a.task:
            if a.only or a.quick:
                raise UserError("--task benchmarks a task of your choice; --only and --quick choose presets: give one or the other")
            presets = dict([task_preset(D.spec_from_args(a), a.budget or "1min", [0])])
    except UserError as e:
        p.error(str(e))
    if a.budget:
        presets = {k: replace(p, budget=a.budget) for k, p in presets.items()}
    if a.seeds:
        presets = {k: replace(p, seeds=[int(x) for x in a.seeds.split(",")]) for k, p in presets.items()}
    try:  # before any run: results and runs that cannot be kept are not computed
        check_writable(RESULTS)
        if not a.report:
            check_writable(RUNS_DIR)
    except UserError as e:
        fail(str(e))
    df = load_results()
    if a.report:
        report(df, presets, README)
        return 0
    cells, todo, stale = pending(presets, arch_list, df, device)
    if a.again:
        todo, stale = cells, 0
    budgets = [Budget.parse(c[1].budget) for c in todo]
    total, steps = sum(b.amount for b in budgets if b.unit == "s"), sum(b.amount for b in budgets if b.unit == "steps")
    print(f"{len(cells) - len(todo)} of {len(cells)} runs done on {device}; {len(todo)} to go, about {total / 60:.0f} min of training"
          + (f" and {steps:,.0f} steps" if steps else "")
          + (f" ({stale} of them ran before under settings or splits that have changed since)" if stale else ""))
    for i, (name, p, arch, seed) in enumerate(todo, 1):
        budget = p.budget
        print(f"[{i}/{len(todo)}] {name} {arch} {budget} seed {seed}", flush=True)
        try:
            row = run_cell(name, p, arch, seed, a.threads, a.device, a.data_dir, a.tensorboard)
        except KeyboardInterrupt:
            fail(f"interrupted: {i - 1} new rows are kept in {RESULTS}/runs.csv; the same command runs the rest, "
                 f"this cell included", 130)
        df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
        save_results(df)
        report(df, presets, README)
        print(f"    test {row['test_em']:.2%}, ood {row['ood_em']:.2%}, {row['steps']} steps, "
              f"{row['samples_per_s']:.0f} samples/s, {row['peak_share']:.1%} of matmul peak"
              + (f", GPU busy {row['gpu_util']:.0%}" if row["gpu_util"] is not None else ""), flush=True)
        if a.commit:
            git_commit([RESULTS, README, CHOMSKY_DOC], f"bench: {name} {arch} {budget} seed {seed}: test {row['test_em']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
