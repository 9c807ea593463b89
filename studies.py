"""Optuna studies of an architecture, kept in a relational database: the storage, the study and
its first trial, the objective (one training.train run per trial), the worker processes, the best
run, the reports. hyper.py is its command line.

Each trial trains with settings drawn from the architecture's `search_space` (settings.resolve
puts them above the architecture's defaults); its value is exact match on the validation split.
Validation at 1/10, 2/10, ... of the trial's budget feeds the pruner, so step k means the same
share of time in every trial. A trial budget in steps (`3000steps`) makes every trial the same
work wherever it runs: the one to choose when machines of different speeds share a study. The
first trial of a new study is exactly what train.py would train (default_params), for comparison.

Storage: a SQLite file, optuna_studies/studies.db, by default. Several machines share a study
with `postgresql://user@host:5432/db` and the same study name on each. Workers are processes with
their own seed and `cores // workers` torch threads each; on a machine with GPUs they take the
GPUs in turn (worker i sees only GPU i mod n, by CUDA_VISIBLE_DEVICES), so several workers share
each GPU and every GPU is used: by default 8 per GPU (at most one per core), one on a machine
without a GPU. Heartbeats mark a killed worker's trial as failed and queue it again
(RetryHeartbeatStaleTrialCallback).
"""
import errno
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import threading
import time
import warnings
from dataclasses import asdict

import optuna
import sqlalchemy.exc
import torch
from rich.live import Live
from rich.table import Table

import archs
import cli
import dataset as D
import devices
from errors import StudyError, UserError
from files import check_writable, clean_stale, tmp_dir
from settings import Budget, Request, resolve
from training import train

DEFAULT_STORAGE = "sqlite:///optuna_studies/studies.db"
STUDIES_DIR = "optuna_studies"
DEFAULT_TRIAL_BUDGET = "1min"
STORAGE_HELP = "expected sqlite:///path/to/file.db or postgresql://user@host:5432/database"
console = cli.console()
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _no_interrupt_traceback(record) -> bool:
    """Optuna logs a trial stopped by Ctrl-C with its traceback; the one-line message is enough."""
    if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
        record.exc_info, record.exc_text = None, None
    return True


for _handler in optuna.logging.get_logger("optuna").handlers:  # records of its child loggers pass here
    _handler.addFilter(_no_interrupt_traceback)


CONNECT_TIMEOUT = 10  # seconds a database server has to answer before the storage is refused
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_study_name(name: str):
    """A study's name is also a folder name (optuna_studies/<name>/): letters, digits, `_`, `.`
    and `-`, starting with a letter or digit, at most 100 characters (no separator, no `..`)."""
    if not STUDY_NAME.fullmatch(name):
        raise StudyError(f"study name {name!r} must be letters, digits, _, . and -, starting with a letter or digit "
                         f"(at most 100 characters): it names a folder under {STUDIES_DIR}/")


def open_storage(url: str, heartbeat: int | None = None, grace: int | None = None) -> optuna.storages.RDBStorage:
    """The study database, with a generous SQLite busy timeout and, for workers, heartbeats."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if os.path.dirname(path) and not os.path.isdir(os.path.dirname(path)):
            check_writable(os.path.dirname(path), "--storage")
        engine = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql")):  # a server that never answers: one line after CONNECT_TIMEOUT
        engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    else:
        engine = {"pool_pre_ping": True}
    kw = {}
    if heartbeat:
        kw = {"heartbeat_interval": heartbeat, "grace_period": grace or 3 * heartbeat,
              "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kw)
    except sqlalchemy.exc.ArgumentError as e:
        raise StudyError(f"bad storage URL {url!r} ({str(e).splitlines()[0]}); {STORAGE_HELP}") from None
    except sqlalchemy.exc.SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise StudyError(f"cannot open storage {url!r}: {reason}; check that the server runs and the URL is right "
                         f"({STORAGE_HELP})") from None
    except RuntimeError as e:  # schema written by another Optuna version
        raise StudyError(f"storage {url!r} does not fit Optuna {optuna.__version__} ({str(e).splitlines()[0][:120]}); "
                         f"an older database is upgraded with `optuna storage upgrade --storage {url}`, "
                         f"a newer one needs the Optuna version that made it") from None
    except ImportError as e:
        missing = getattr(e.__cause__, "name", None) or "its database driver"
        raise StudyError(f"storage {url!r} needs the Python package {missing!r}; pip install it") from None


def load_study(storage, name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StudyError(f"no study named {name!r} in this storage; existing: {', '.join(names) or 'none'}") from None


def study_settings(study) -> dict:
    attrs = study.user_attrs
    if "arch" not in attrs:
        raise StudyError(f"study {study.study_name!r} was not made by hyper.py (no architecture recorded)")
    return attrs


def space_names(arch: str) -> tuple[list, list]:
    """The model and training settings the architecture's search space draws."""
    space = archs.ARCHS[arch].search_space(optuna.create_study().ask())  # in memory: only the names count
    return list(space["model"]), list(space["train"])


def default_params(arch: str, spec: D.DataSpec, trial_budget: str) -> dict:
    """What train.py would train for this architecture, task and budget (settings.resolve with
    nothing asked), as the search space's parameters: trial 0 of every study."""
    s = resolve(Request(arch, trial_budget, spec))
    model, train = space_names(arch)
    return {**{k: s.model[k] for k in model}, **{k: getattr(s.train, k) for k in train}}


def trial_request(settings: dict, space: dict, **where) -> Request:
    """The Request of one trial of a study (its settings: study_settings) with the settings its
    search space drew (space: {"model": {...}, "train": {...}}); where: seed, threads, device, models_dir."""
    return Request(arch=settings["arch"], budget=settings["trial_budget"], data=D.DataSpec(**settings["data"]),
                   model=dict(space["model"]), **space["train"], **where)


def new_study(storage, arch, spec: D.DataSpec, trial_budget: str, name: str | None, seed: int):
    name = name or next(f"hyper_{arch}_{spec.task}_{k}" for k in range(1, 10_000)
                        if f"hyper_{arch}_{spec.task}_{k}" not in {s.study_name for s in optuna.get_all_study_summaries(storage)})
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyError(f"a study named {name!r} exists already; resume it with --resume --study {name}") from None
    for k, v in {"arch": arch, "data": asdict(spec), "trial_budget": trial_budget, "seed": seed}.items():
        study.set_user_attr(k, v)
    study.enqueue_trial(default_params(arch, spec, trial_budget), user_attrs={"default_config": True})
    return study


def objective_for(settings: dict, study_name: str, threads: int, seed: int, device: str, tensorboard: bool = False):
    trials_dir = os.path.join(STUDIES_DIR, study_name, "trials")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", platform.node())
        space = archs.ARCHS[settings["arch"]].search_space(trial)
        request = trial_request(settings, space, seed=seed * 100_000 + trial.number, threads=threads, device=device,
                                models_dir=trials_dir, tensorboard=tensorboard)

        def on_eval(point, frac, val_em):
            trial.report(val_em, point)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val EM {val_em:.3f} at {frac:.0%} of the budget")

        m = train(request, on_eval=on_eval, quiet=True)
        if m["interrupted"]:
            raise KeyboardInterrupt
        for k in ("test_em", "steps", "samples_per_s", "params", "run", "wall_time"):
            trial.set_user_attr(k, m[k])
        return m["val_em"]

    return objective


def count(study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def watch_parent(parent: int, every: float = 1.0):
    """A worker's guard: if the main process dies (even by SIGKILL, which it cannot pass on), the
    worker is adopted by another parent; then it interrupts itself, like Ctrl-C, within a second."""
    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


WORKERS_PER_GPU = 8  # training processes sharing one GPU: a small run alone leaves it mostly idle (docs/tuning.md)


def default_workers(cores: int, n_gpus: int) -> int:
    """Workers when --workers is not given: one on a machine without a GPU (a trial takes every
    core), else WORKERS_PER_GPU on each GPU, at most one per core (each worker's host side needs one)."""
    return min(cores, WORKERS_PER_GPU * n_gpus) if n_gpus else 1


def worker_gpus(workers: int, n_gpus: int, visible: str | None) -> list[str | None]:
    """The GPU each worker sees, in turn over the GPUs visible to this process (the user's
    CUDA_VISIBLE_DEVICES when set): [None, ...] on a machine without one."""
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(n_gpus)]
    ids = ids[:n_gpus]
    return [ids[i % len(ids)] if ids else None for i in range(workers)]


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random draws for trial n come from a stream of their own, seeded by the study's
    seed and n. Trial numbers are handed out once by the storage, so every worker, every machine
    sharing a study and every --resume draws afresh, while a study run by one process from start
    to end is the same study again. (A sampler seeded once per process drew the same parameters
    again in each process and on each resume.) It reseeds the two random streams TPESampler of
    Optuna 5.0 draws from; tests/test_hyper.py checks both properties, so a change there shows."""

    def __init__(self, seed: int, **kw):
        super().__init__(seed=seed, **kw)
        self.study_seed = seed

    def before_trial(self, study, trial):
        stream = (self.study_seed * 1_000_003 + trial.number) % 2**32
        self._rng.rng.seed(stream)
        self._random_sampler._rng.rng.seed(stream)
        super().before_trial(study, trial)


def worker(url, study_name, deadline, max_trials, threads, seed, heartbeat, grace, parent=None, gpu=None, device="auto",
           tensorboard=False):
    """One worker process: runs trials until the study's time is spent or enough trials ran."""
    if gpu is not None:  # a spawned process: CUDA is not initialised yet, so this picks its GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    cli.catch_ctrl_c()
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    if parent is not None:
        watch_parent(parent)
    storage = open_storage(url, heartbeat, grace)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2))
    settings = study_settings(study)
    seed = settings.get("seed", seed)  # the seed the study was made with, on every resume and machine
    study.sampler = TrialSeededTPE(seed, n_startup_trials=5)
    trial = Budget.parse(settings["trial_budget"])
    trial_s = trial.amount if trial.unit == "s" else 0.0  # steps: the longest trial this worker has run
    objective = objective_for(settings, study_name, threads, seed, device, tensorboard)
    S = optuna.trial.TrialState
    try:
        while time.time() + trial_s + 10 < deadline:
            started = time.time()
            if max_trials and count(study, (S.COMPLETE, S.PRUNED, S.FAIL, S.RUNNING)) >= max_trials:
                break
            try:
                study.optimize(objective, n_trials=1, catch=(UserError, RuntimeError))
            except ValueError as e:  # two workers popped the same queued trial (SQLite has no row locks)
                if "Cannot tell" not in str(e):  # and the other one finished it first: nothing is lost
                    raise
            if trial.unit == "steps":
                trial_s = max(trial_s, time.time() - started)
    except KeyboardInterrupt:
        pass


def fail_stale(url, study_name, grace, dead_pids=()):
    """Mark failed (and queue again, as the heartbeat callback does) the RUNNING trials whose worker
    is gone: any of dead_pids on this host at once, others once their heartbeat is older than grace
    (a worker elsewhere, sharing the study through PostgreSQL, may still be running its trial)."""
    storage = open_storage(url, heartbeat=max(1, grace // 3), grace=grace)
    study = optuna.load_study(study_name=study_name, storage=storage)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
    host = platform.node()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("host") == host and t.user_attrs.get("pid") in dead_pids:
            try:
                if storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL):
                    retry(study, storage.get_trial(t._trial_id))
            except optuna.exceptions.UpdateFinishedTrialError:  # it finished after all
                pass
    optuna.storages.fail_stale_trials(study)


def save_best(study) -> str | None:
    """Copy the best trial's run folder to optuna_studies/<study>/best/ (replaced atomically)."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    run = best.user_attrs.get("run")
    if not run or not os.path.isdir(run):
        return None
    dest = os.path.join(STUDIES_DIR, study.study_name, "best")
    clean_stale(os.path.dirname(dest))
    tmp = tmp_dir(os.path.dirname(dest))
    try:
        shutil.copytree(run, os.path.join(tmp, "run"))
        with open(os.path.join(tmp, "run", "trial.txt"), "w") as f:
            f.write(f"study {study.study_name}, trial {best.number}, val EM {best.value:.4f}, params {best.params}\n")
        try:  # the previous best goes aside into our own folder, the new one takes its place
            os.rename(dest, os.path.join(tmp, "old"))
        except FileNotFoundError:
            pass
        os.rename(os.path.join(tmp, "run"), dest)
    except OSError as e:  # another process put its best in place between our two renames: theirs stays
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def status_table(study, deadline, n_workers) -> Table:
    S = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    c = {s: sum(t.state == s for t in trials) for s in S}
    done = [t for t in trials if t.state == S.COMPLETE]
    best = max(done, key=lambda t: t.value) if done else None
    t = Table(title=f"study {study.study_name}")
    for col in ("complete", "pruned", "failed", "running", "best val EM", "best trial", "time left", "workers"):
        t.add_column(col, justify="right")
    t.add_row(str(c[S.COMPLETE]), str(c[S.PRUNED]), str(c[S.FAIL]), str(c[S.RUNNING]),
              f"{best.value:.2%}" if best else "-", str(best.number) if best else "-",
              f"{max(0, deadline - time.time()):.0f}s", str(n_workers))
    return t


def status_line(study, deadline) -> str:
    S = optuna.trial.TrialState
    c = dict.fromkeys(S, 0)
    for t in study.get_trials(deepcopy=False):
        c[t.state] += 1
    done = study.get_trials(deepcopy=False, states=(S.COMPLETE,))
    best = f"{max(t.value for t in done):.2%}" if done else "-"
    return (f"{time.strftime('%H:%M:%S')} complete {c[S.COMPLETE]}, pruned {c[S.PRUNED]}, failed {c[S.FAIL]}, "
            f"running {c[S.RUNNING]}, best val EM {best}, {max(0, deadline - time.time()):.0f}s left")


def run_study(url, study_name, time_s, workers, max_trials, seed, heartbeat=10, grace=30, device="auto", tensorboard=False):
    check_writable(STUDIES_DIR)  # the trials' runs and the best one: before any trial trains
    storage = open_storage(url)
    study = load_study(storage, study_name)
    settings = study_settings(study)
    D.prepare(D.DataSpec(**settings["data"]))  # once, before the workers start
    deadline = time.time() + time_s
    threads = max(1, (os.cpu_count() or 1) // workers)
    devices.choose(device)  # a device this machine lacks: one line, before any worker starts
    on_gpus = device == "auto" or device.startswith("cuda")
    gpus = worker_gpus(workers, torch.cuda.device_count() if on_gpus else 0, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpus[0] is not None:
        console.print(f"{workers} worker(s) on GPU(s) {', '.join(sorted(set(gpus), key=gpus.index))}")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(url, study_name, deadline, max_trials, threads, seed, heartbeat, grace,
                                              os.getpid(), gpus[i], device, tensorboard)) for i in range(workers)]
    for p in procs:
        p.start()
    interrupted = False
    try:
        if console.is_terminal:
            with Live(status_table(study, deadline, workers), console=console, auto_refresh=False) as live:
                while any(p.is_alive() for p in procs):
                    time.sleep(2)
                    live.update(status_table(study, deadline, sum(p.is_alive() for p in procs)), refresh=True)
        else:  # scripts and CI: one line every 30 s
            while any(p.is_alive() for p in procs):
                for _ in range(60):
                    time.sleep(0.5)
                    if not any(p.is_alive() for p in procs):
                        break
                console.print(status_line(study, deadline))
        console.print(status_table(study, deadline, 0))
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]stopping: the running trials are marked failed[/yellow]")
        for p in procs:  # a terminal's Ctrl-C reaches them already; `kill -INT <pid>` reaches only us
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(timeout=30)
        storage = f" --storage {url}" if url != DEFAULT_STORAGE else ""
        console.print(f"resume with: python hyper.py --resume --study {study_name}{storage}")
    for p in procs:
        p.join()
    fail_stale(url, study_name, grace, dead_pids={p.pid for p in procs})
    best = save_best(study)
    if best:
        console.print(f"best trial {study.best_trial.number}: val EM {study.best_value:.2%}, params {study.best_trial.params}")
        console.print(f"saved as {best}; score it with: python evaluate.py {best}")
    return interrupted


def trials_table(df, study_name) -> Table:
    """The trials as a table that reads at 80 columns: state, values, duration, steps, then the
    tuned settings in one column that wraps (trials.csv keeps every column)."""
    t = Table(title=f"{study_name}: {len(df)} trials")
    for col in ("#", "state", "val EM", "test EM", "s", "steps", "settings"):
        t.add_column(col, justify="left" if col in ("state", "settings") else "right", no_wrap=col != "settings")
    pct = lambda v: "-" if v is None or v != v else f"{v:.1%}"  # noqa: E731
    params = [c for c in df.columns if c.startswith("params_")]
    for _, r in df.iterrows():
        steps = r.get("user_attrs_steps")
        settings = " ".join(f"{c[len('params_'):]}={r[c]:.3g}" if isinstance(r[c], float) else f"{c[len('params_'):]}={r[c]}"
                            for c in params if r[c] == r[c])
        t.add_row(str(r["number"]), str(r["state"]).replace("TrialState.", ""), pct(r["value"]),
                  pct(r.get("user_attrs_test_em", float("nan"))),
                  f"{r['duration'].total_seconds():.0f}" if r["duration"] == r["duration"] else "-",
                  "-" if steps is None or steps != steps else f"{steps:.0f}", settings)
    return t


def report(url, study_name, grace=30):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    study = load_study(open_storage(url), study_name)
    fail_stale(url, study_name, grace)
    df = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params", "user_attrs"))
    if df.empty:
        raise StudyError(f"study {study_name!r} has no trials yet")
    out = os.path.join(STUDIES_DIR, study_name)
    os.makedirs(out, exist_ok=True)
    df.to_csv(os.path.join(out, "trials.csv"), index=False)
    console.print(trials_table(df, study_name))
    written = [os.path.join(out, "trials.csv")]
    for name, plot in (("history", ovm.plot_optimization_history), ("importances", ovm.plot_param_importances),
                       ("intermediate", ovm.plot_intermediate_values)):
        try:
            ax = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. importances need 2+ complete trials
            console.print(f"[dim]no {name} plot: {str(e).splitlines()[0][:100]}[/dim]")
            continue
        fig = (ax[0] if hasattr(ax, "__len__") else ax).get_figure()
        path = os.path.join(out, f"{name}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    if (curves := trial_curves(study, os.path.join(out, "curves.png"))) is not None:
        written.append(curves)
    console.print("written: " + ", ".join(written))


def trial_curves(study, path) -> str | None:
    """Every trial's validation curve on one plot (exact match against training seconds, from the
    curve.csv of its run folder), the best trial drawn thick; None when no trial left a run."""
    import matplotlib.pyplot as plt
    import pandas as pd
    best = study.best_trial.number if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) else None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = 0
    for t in study.trials:
        curve = os.path.join(t.user_attrs.get("run") or "", "curve.csv")
        if not os.path.isfile(curve):
            continue
        c = pd.read_csv(curve)
        ax.plot(c["train_s"], c["val_em"] * 100, lw=2.5 if t.number == best else 0.8, alpha=1 if t.number == best else 0.6,
                label=f"trial {t.number} (best)" if t.number == best else None)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation exact match (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{study.study_name}: {drawn} trials' validation curves")
    ax.grid(alpha=0.3)
    if best is not None:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def list_studies(url, grace=30):
    storage = open_storage(url)
    for s in optuna.get_all_study_summaries(storage):  # a killed worker's trial is not left RUNNING
        fail_stale(url, s.study_name, grace)
    summaries = optuna.get_all_study_summaries(storage)
    t = Table(title=f"studies in {url}")
    for c in ("#", "study", "arch", "task", "trial budget", "trials", "best val EM"):
        t.add_column(c)
    for i, s in enumerate(summaries, 1):
        a = s.user_attrs
        best = f"{s.best_trial.value:.2%}" if s.best_trial is not None and s.best_trial.value is not None else "-"
        t.add_row(str(i), s.study_name, str(a.get("arch", "?")), str(a.get("data", {}).get("task", "?")),
                  str(a.get("trial_budget", "?")), str(s.n_trials), best)
    console.print(t)
    return summaries
