"""hyper.py: real studies with several worker processes on SQLite and PostgreSQL, pruning,
crash recovery through heartbeats, reports and one-line errors."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import optuna
import pytest

import archs
import dataset as D
import studies
from conftest import ROOT, SMALL, assert_one_line_error, run_cli, run_main
from errors import StudyError

S = optuna.trial.TrialState
PG_URL = os.environ.get("HARNESS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
EASY = ["--task", "bracket", "--max-len", "8", "--max-depth", "4", *SMALL]
EASY_SPEC = D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, 3000, 100, 200, 100)


def pg_available():
    try:
        studies.open_storage(PG_URL)
        return True
    except StudyError:
        return False


def check_accounted(study, at_least):
    """Every trial has a unique number, a final state, and complete ones have their results."""
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials))), "none lost, none duplicated"
    assert len(trials) >= at_least
    assert all(t.state in (S.COMPLETE, S.PRUNED, S.FAIL) for t in trials), [t.state for t in trials]
    done = [t for t in trials if t.state == S.COMPLETE]
    assert done and all({"test_em", "steps", "samples_per_s", "params", "run"} <= set(t.user_attrs) for t in done)
    assert all(0 <= t.value <= 1 for t in done)
    assert trials[0].user_attrs.get("default_config")
    assert trials[0].params == studies.default_params("gru", EASY_SPEC, study.user_attrs["trial_budget"])
    return trials


def run_two_workers(tmp_path, url, name):
    p, seconds = run_cli("hyper.py", "--arch", "gru", *EASY, "--time", "2min", "--trial-budget", "3s", "--workers", "2",
                         "--trials", "4", "--study", name, "--storage", url, cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"saved as optuna_studies/{name}/best; score it with: python evaluate.py optuna_studies/{name}/best\n" in p.stdout, \
        "a suggested command stays on one line in a log (no terminal: no wrapping at 80 columns)"
    study = optuna.load_study(study_name=name, storage=url)
    check_accounted(study, 4)
    assert len({t.user_attrs["pid"] for t in study.trials if "pid" in t.user_attrs}) == 2, "two worker processes shared it"
    best = tmp_path / "optuna_studies" / name / "best"
    assert (best / "model.safetensors").exists() and (best / "metrics.json").exists()
    return study


def test_sqlite_study_with_two_workers_and_report(tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    run_two_workers(tmp_path, url, "sq")
    p, _ = run_cli("evaluate.py", "optuna_studies/sq/best", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p, _ = run_cli("hyper.py", "--report", "--study", "sq", "--storage", url, cwd=tmp_path, env={"COLUMNS": "80"})
    assert p.returncode == 0, p.stderr
    table = [line for line in p.stdout.splitlines() if line[:1] in "┏┃┡│└"]  # prose lines are not wrapped (cli.console)
    assert table and all(len(line) <= 80 for line in table) and "lr=" in p.stdout and "batch_size=" in p.stdout
    assert "…" not in p.stdout, "readable at 80 columns: no column cut to a character or two"
    out = tmp_path / "optuna_studies" / "sq"
    assert (out / "trials.csv").exists() and (out / "history.png").exists() and (out / "intermediate.png").exists()
    assert os.path.getsize(out / "curves.png") > 5000, "every trial's validation curve on one plot"
    p, _ = run_cli("hyper.py", "--list", "--storage", url, cwd=tmp_path)
    assert p.returncode == 0 and "sq" in p.stdout


def test_postgres_study_with_two_workers(tmp_path):
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (.ci/run starts it)")
        pytest.skip("PostgreSQL not running")
    name = f"pg_{uuid.uuid4().hex[:8]}"
    try:
        run_two_workers(tmp_path, PG_URL, name)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=PG_URL)
        except KeyError:
            pass


@pytest.mark.filterwarnings("ignore:Fixed parameter lr")
def test_hopeless_trial_is_pruned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/studies.db"
    storage = studies.open_storage(url)
    study = studies.new_study(storage, "gru", EASY_SPEC, "400steps", "prune", seed=0)  # every trial the same work, on any machine
    for lr in (5e-3, 8e-3):
        study.enqueue_trial({**studies.default_params("gru", EASY_SPEC, "400steps"), "lr": lr})
    study.enqueue_trial({**studies.default_params("gru", EASY_SPEC, "400steps"), "lr": 1e-7})  # cannot learn anything in 400 steps
    studies.worker(url, "prune", time.time() + 300, 4, 2, 0, None, None)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials[:3]] == [S.COMPLETE] * 3
    assert trials[3].state == S.PRUNED and trials[3].params["lr"] == 1e-7
    assert all(t.user_attrs["steps"] == 400 for t in trials[:3]), [t.user_attrs.get("wall_time") for t in trials]
    assert len(trials[3].intermediate_values) < 10, "stopped before the end of its budget"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_killed_worker_leaves_no_running_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    args = ["--heartbeat", "1", "--grace", "3", "--storage", url, "--study", "hb"]
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "hyper.py"), "--arch", "gru", *EASY, "--time", "2min",
                              "--trial-budget", "8s", "--workers", "1", *args], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim, end = None, time.time() + 90
    while victim is None and time.time() < end:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="hb", storage=url)
        except KeyError:
            continue
        running = study.get_trials(deepcopy=False, states=(S.RUNNING,))
        if running and "pid" in running[0].user_attrs:
            victim = running[0]
    assert victim is not None, "no trial started"
    drawn = set(studies.default_params("gru", EASY_SPEC, "8s"))
    while set(victim.params) != drawn and time.time() < end:  # the snapshot above may predate some of its draws
        time.sleep(0.2)
        victim = optuna.load_study(study_name="hb", storage=url).trials[victim.number]
    assert victim.state == S.RUNNING and set(victim.params) == drawn
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)  # the worker dies mid-trial
    first.wait(timeout=60)
    study = optuna.load_study(study_name="hb", storage=url)
    assert study.trials[victim.number].state == S.FAIL, "failed when the study ends, not left RUNNING"
    assert study.get_trials(deepcopy=False, states=(S.WAITING,)), "and queued again"
    p, _ = run_cli("hyper.py", "--resume", "--time", "1min", "--trials", "2", *args, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    study = optuna.load_study(study_name="hb", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert trials[victim.number].state == S.FAIL
    retried = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert retried and retried[0].params == victim.params and retried[0].state in (S.COMPLETE, S.PRUNED)
    assert not study.get_trials(deepcopy=False, states=(S.RUNNING, S.WAITING))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_cleanly_and_resumes(tmp_path, sig):
    """SIGINT (as `kill -INT` sends it) or SIGTERM to the main process alone stops its workers too;
    the interrupted trials are closed, none stays RUNNING, it exits 130, and the study resumes."""
    url = f"sqlite:///{tmp_path}/studies.db"
    main = subprocess.Popen([sys.executable, os.path.join(ROOT, "hyper.py"), "--arch", "gru", *EASY, "--time", "5min",
                             "--trial-budget", "10s", "--workers", "2", "--storage", url, "--study", "ctrlc"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end, running = time.time() + 90, []
    while time.time() < end:
        time.sleep(0.5)
        try:
            running = optuna.load_study(study_name="ctrlc", storage=url).get_trials(deepcopy=False, states=(S.RUNNING,))
        except KeyError:
            continue
        if len(running) == 2:
            break
    assert len(running) == 2, "both workers run a trial within 90 s"
    while time.time() < end and not all(t.intermediate_values for t in running):  # both past their first validation
        time.sleep(0.2)
        study = optuna.load_study(study_name="ctrlc", storage=url)
        running = [study.trials[t.number] for t in running]
    main.send_signal(sig)
    out, _ = main.communicate(timeout=60)
    assert main.returncode == 130, out
    assert "Traceback" not in out and "resume with: python hyper.py --resume --study ctrlc" in out, out
    study = optuna.load_study(study_name="ctrlc", storage=url)
    stopped = {t.number: t.state for t in study.trials if t.number in {r.number for r in running}}
    assert stopped == {r.number: S.FAIL for r in running}, "both stopped early in their 10 s trials, not let finish"
    assert not study.get_trials(deepcopy=False, states=(S.RUNNING, S.WAITING))  # a trial done before (a worker slow to start) stays done
    if sig == signal.SIGTERM:
        return  # SIGTERM raises the KeyboardInterrupt SIGINT raises: the study it leaves resumes as after SIGINT, below
    p, _ = run_cli("hyper.py", "--resume", "--study", "ctrlc", "--storage", url, "--time", "1min", "--trials", "3",
                   "--trial-budget", "10s", *EASY, cwd=tmp_path, timeout=120)  # the study's own settings may be repeated
    assert p.returncode == 0, p.stdout + p.stderr
    assert optuna.load_study(study_name="ctrlc", storage=url).get_trials(deepcopy=False, states=(S.COMPLETE, S.PRUNED))


def test_errors_are_one_line(tmp_path):
    for args in (["--arch", "gru", "--time", "1min", "--storage", "nosuch://x"],
                 ["--arch", "gru", "--time", "1min", "--storage", "postgresql://nobody@127.0.0.1:1/none"],
                 ["--resume", "--study", "nope", "--time", "1min", "--storage", f"sqlite:///{tmp_path}/a.db"],
                 ["--arch", "cnn", "--time", "1min", "--storage", f"sqlite:///{tmp_path}/a.db"],
                 ["--arch", "gru", "--time", "10minutes"],
                 ["--report", "--study", "nope", "--storage", f"sqlite:///{tmp_path}/a.db"]):
        p = run_cli("hyper.py", *args, cwd=tmp_path)[0] if "nosuch://x" in args else run_main("hyper.py", *args, cwd=tmp_path)
        assert_one_line_error(p)  # the first case through the script itself, the others in-process
    p = run_main("hyper.py", cwd=tmp_path)
    assert p.returncode != 0 and "usage:" in p.stderr
    (tmp_path / "file").write_text("")  # folders that cannot be made: the storage's, and the studies' runs
    for args in (["--storage", f"sqlite:///{tmp_path}/file/studies.db"], ["--storage", f"sqlite:///{tmp_path}/b.db"]):
        (tmp_path / "optuna_studies").write_text("")
        p = run_main("hyper.py", "--arch", "gru", "--time", "2days", *args, cwd=tmp_path)
        assert_one_line_error(p)
        assert "cannot write in" in p.stderr and ("Not a directory" in p.stderr or "File exists" in p.stderr), p.stderr
    db = tmp_path / "old.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="x")
    with sqlite3.connect(db) as c:
        c.execute("update alembic_version set version_num = 'v0.9.0.a'")
    p = run_main("hyper.py", "--list", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert_one_line_error(p)
    assert "optuna storage upgrade" in p.stderr


def test_bad_study_names_and_a_server_that_never_answers_are_one_line(tmp_path):
    """A study name is a folder name: `..` or a separator is refused before anything is written;
    a PostgreSQL port that accepts and never answers is refused after studies.CONNECT_TIMEOUT."""
    import socket
    for name in ("../../x", "a/b", ".hidden", "x" * 101):
        p = run_main("hyper.py", "--arch", "gru", "--time", "1min", "--study", name, "--storage",
                     f"sqlite:///{tmp_path}/a.db", cwd=tmp_path)
        assert_one_line_error(p)
        assert "study name" in p.stderr
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "optuna_studies").exists()
    with socket.socket() as silent:  # listens, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        p, _ = run_cli("hyper.py", "--list", "--storage", f"postgresql://nobody@127.0.0.1:{port}/none", cwd=tmp_path,
                       timeout=10 * studies.CONNECT_TIMEOUT)
    assert_one_line_error(p)
    assert "cannot open storage" in p.stderr


def test_resumed_studies_draw_afresh_and_one_process_reproduces(tmp_path):
    """Each --resume (or worker, or machine) draws new parameters: trial n's draws come from the
    study's seed and n. Two resumes of one study draw different parameters; the same study run in
    one process from the start draws the same ones again."""
    url = f"sqlite:///{tmp_path}/studies.db"
    base = ["--arch", "gru", *EASY, "--time", "5min", "--trial-budget", "2s", "--workers", "1", "--storage", url]
    p, _ = run_cli("hyper.py", *base, "--study", "s", "--trials", "2", cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    for n in (3, 4):
        p, _ = run_cli("hyper.py", "--resume", "--study", "s", "--storage", url, "--time", "5min", "--trials", str(n),
                       "--workers", "1", cwd=tmp_path, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
    drawn = [t.params for t in optuna.load_study(study_name="s", storage=url).trials[1:]]
    assert len(drawn) == 3 and drawn[0] != drawn[1] != drawn[2] != drawn[0], drawn

    def draws(sampler_for, n, restart_at=None):
        """n trials of the search space with a sampler that a new process would make at restart_at."""
        study = optuna.create_study(direction="maximize", sampler=sampler_for())
        for i in range(n):
            if i == restart_at:
                study.sampler = sampler_for()
            study.optimize(lambda t: sum(map(float, archs.ARCHS["gru"].search_space(t)["train"].values())), n_trials=1)
        return [t.params for t in study.trials]
    seeded = lambda: studies.TrialSeededTPE(0, n_startup_trials=5)  # noqa: E731
    assert draws(seeded, 4) == draws(seeded, 4), "one process from the start: the same study"
    resumed = draws(seeded, 4, restart_at=2)
    assert resumed[2:] != resumed[:2], "a resume draws afresh"
    once = lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=5)  # noqa: E731
    repeated = draws(once, 4, restart_at=2)
    assert repeated[2:] == repeated[:2], "a sampler seeded once per process repeats itself (what TrialSeededTPE fixes)"


def test_a_resumed_study_keeps_its_settings(tmp_path):
    """--resume with an architecture, data option or trial budget other than the study's is a
    one-line error (they were silently ignored: the trials kept the study's), and runs nothing."""
    import dataset as D
    url = f"sqlite:///{tmp_path}/studies.db"
    studies.new_study(studies.open_storage(url), "gru", D.DataSpec("bracket", {"max_len": 8}, 3000, 100, 200, 100), "2s", "kept", seed=0)
    resume = ["--resume", "--study", "kept", "--storage", url, "--time", "1min"]
    for args, says in ((["--trial-budget", "5s"], "made with --trial-budget 2s, not --trial-budget 5s"),
                       (["--arch", "lstm"], "made with --arch gru, not --arch lstm"),
                       (["--max-len", "12"], "made with --max-len 8, not --max-len 12"),
                       (["--max-len", "8", "--max-depth", "4"], "made with --max-depth 10, not --max-depth 4"),  # its default
                       (["--task", "arith"], "made with --task bracket, not --task arith"),
                       (["--digits", "2"], "--digits does not apply to the task of study 'kept' (bracket)"),
                       (["--train-size", "500"], "made with --train-size 3000, not --train-size 500"),
                       (["--data-seed", "1"], "made with --data-seed 0, not --data-seed 1")):
        p = run_main("hyper.py", *resume, *args, cwd=tmp_path)
        assert_one_line_error(p)
        assert says in p.stderr, p.stderr
    trials = optuna.load_study(study_name="kept", storage=url).trials
    assert [t.state for t in trials] == [S.WAITING] and not (tmp_path / "optuna_studies").exists(), "only the queued default"


def test_prompts_in_a_terminal(tmp_path):
    import pty

    from test_train import read_until
    url = f"sqlite:///{tmp_path}/studies.db"
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, os.path.join(ROOT, "hyper.py"), *EASY, "--storage", url])
    read_until(fd, "Enter 1 or 2")
    os.write(fd, b"3\n")
    read_until(fd, "is not 1 or 2")
    os.write(fd, b"2\n")
    read_until(fd, "Enter the model architecture")
    os.write(fd, b"gru\n")
    read_until(fd, "training time of each trial")
    os.write(fd, b"2s\n")
    read_until(fd, "time limit")
    os.write(fd, b"20s\n")
    read_until(fd, "parallel workers")
    os.write(fd, b"1\n")
    out = read_until(fd, "best trial", timeout=90)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    [summary] = optuna.get_all_study_summaries(url)
    assert summary.study_name == "hyper_gru_bracket_1" and summary.n_trials >= 1


def process_gone(pid) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)  # a zombie has stopped
    except FileNotFoundError:
        return True


def test_workers_die_with_a_killed_main_process(tmp_path):
    """SIGKILL of the main process cannot be passed on: the orphaned workers notice within seconds,
    stop, and close their trials (they used to train on until the study's time ran out)."""
    url = f"sqlite:///{tmp_path}/studies.db"
    main = subprocess.Popen([sys.executable, os.path.join(ROOT, "hyper.py"), "--arch", "gru", *EASY, "--time", "5min",
                             "--trial-budget", "1min", "--workers", "1", "--storage", url, "--study", "orphan"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the wait is for a spawned worker's imports and its first trial: seconds on an idle machine
    # (9 s), 37 s with three matmul loops beside it; a generous cap costs nothing when it is quick
    worker, end = None, time.time() + 240
    while worker is None and time.time() < end:
        time.sleep(0.5)
        try:
            running = optuna.load_study(study_name="orphan", storage=url).get_trials(deepcopy=False, states=(S.RUNNING,))
        except KeyError:
            continue
        worker = running[0].user_attrs.get("pid") if running else None
    assert worker is not None, "no trial started"
    main.kill()
    main.wait()
    end = time.time() + 60
    while not process_gone(worker) and time.time() < end:
        time.sleep(0.5)
    assert process_gone(worker), "the worker outlived its main process"
    assert not optuna.load_study(study_name="orphan", storage=url).get_trials(deepcopy=False, states=(S.RUNNING,))


def test_save_best_from_two_processes_at_once(tmp_path, monkeypatch):
    """Processes replacing optuna_studies/<study>/best at the same moment: no error, one complete
    best/ folder, nothing hidden left behind (two at once used to fail with 'Directory not empty')."""
    import multiprocessing as mp
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/studies.db"
    import dataset as D
    studies.new_study(studies.open_storage(url), "gru", D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, 3000, 100, 200, 100),
                            "2s", "race", seed=0)
    studies.worker(url, "race", time.time() + 60, 1, 2, 0, None, None)
    procs = [mp.get_context("fork").Process(target=save_best_many, args=(url,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    folder = tmp_path / "optuna_studies" / "race"
    assert sorted(os.listdir(folder)) == ["best", "trials"] and (folder / "best" / "model.safetensors").exists()


def save_best_many(url):
    study = optuna.load_study(study_name="race", storage=url)
    for _ in range(100):
        studies.save_best(study)


def test_too_many_workers_is_refused(tmp_path):
    p = run_main("hyper.py", "--arch", "gru", "--time", "1min", "--workers", "99", "--storage",
                 f"sqlite:///{tmp_path}/a.db", cwd=tmp_path)
    assert_one_line_error(p)
    assert f"between 1 and {os.cpu_count()}" in p.stderr and not (tmp_path / "a.db").exists()


def test_default_workers_fill_each_gpu():
    """Without --workers: one worker on a machine without a GPU; eight per GPU on one with GPUs
    (issue 9's measurement), never more than the cores that drive them."""
    assert studies.default_workers(2, 0) == 1 and studies.default_workers(64, 0) == 1
    assert studies.default_workers(16, 1) == 8 and studies.default_workers(32, 2) == 16
    assert studies.default_workers(4, 1) == 4 and studies.default_workers(16, 4) == 16 and studies.default_workers(1, 1) == 1


def test_workers_take_the_gpus_in_turn():
    """Worker i sees GPU i mod n, among the GPUs the user made visible; none without a GPU."""
    assert studies.worker_gpus(3, 0, None) == [None, None, None]
    assert studies.worker_gpus(5, 2, None) == ["0", "1", "0", "1", "0"]
    assert studies.worker_gpus(3, 2, "3, 5") == ["3", "5", "3"]
    assert studies.worker_gpus(2, 1, "GPU-4f2a,GPU-77b1") == ["GPU-4f2a", "GPU-4f2a"]  # torch saw only the first
    assert studies.worker_gpus(2, 0, "") == [None, None]


def test_trial_zero_is_what_train_py_trains():
    """The first trial of every study is exactly the run train.py makes with nothing asked: for
    every architecture on every task, the settings its enqueued parameters resolve to (drawn
    through the search space, as a worker draws them) are train.py's. Optuna warns, and draws
    another value, when an enqueued one lies outside the space: here that is an error."""
    import warnings

    import archs
    import tasks
    from settings import Request, resolve
    for arch in archs.ARCHS:
        for name in tasks.TASKS:
            spec = D.DataSpec(name)
            study = optuna.create_study()
            study.enqueue_trial(studies.default_params(arch, spec, "1min"))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                space = archs.ARCHS[arch].search_space(study.ask())
            attrs = {"arch": arch, "data": {"task": name}, "trial_budget": "1min"}
            assert resolve(studies.trial_request(attrs, space)) == resolve(Request(arch, "1min", spec)), (arch, name)
