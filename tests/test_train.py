"""train.py from the command line: budgets, the prompt, the run folder, resume, interruptions."""
import json
import os
import platform
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SMALL, assert_one_line_error, run_cli, run_main
from errors import SettingsError
from settings import Budget, parse_budget
from training import curriculum_cap, shortest_first


def visible_runs(cwd):
    d = cwd / "models"
    return sorted(x for x in os.listdir(d) if not x.startswith(".")) if d.exists() else []


def test_parse_budget():
    assert parse_budget("30s") == 30 and parse_budget("1min") == 60 and parse_budget("10min") == 600
    assert parse_budget("1hour") == 3600 and parse_budget("6hours") == 6 * 3600 and parse_budget("2days") == 172800
    for bad in ("10minutes", "-1min", "1", "min", "3days", "0s", "1.5 min"):
        with pytest.raises(SettingsError):
            parse_budget(bad)
    assert Budget.parse("10min") == Budget(600, "s") and Budget.parse("30000steps") == Budget(30000, "steps")
    assert Budget.parse("1step") == Budget(1, "steps") and Budget.parse("30000steps").frac(5.0, 3000) == 0.1
    for bad in ("0steps", "1.5steps", "-3steps", "steps", "10 steps", "2000000000steps", "10minutes"):
        with pytest.raises(SettingsError, match="budget"):
            Budget.parse(bad)


def test_run_is_saved_within_budget(tmp_path):
    p, _ = run_cli("train.py", "gru", "4s", *SMALL, "--seed", "3", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [name] = visible_runs(tmp_path)
    assert name.startswith("gru_bracket_") and name.endswith("_4s")
    run = tmp_path / "models" / name
    assert {"config.json", "model.safetensors", "metrics.json", "curve.csv", "optimizer.pt", "training.png"} <= set(os.listdir(run))
    assert os.path.getsize(run / "training.png") > 5000
    m = json.load(open(run / "metrics.json"))
    for key in ("test_em", "steps", "samples", "wall_time", "seed", "versions", "loadavg_start", "machine",
                "train_time", "val_time", "samples_per_s", "cpu_time_per_wall"):
        assert key in m, key
    assert m["seed"] == 3 and m["steps"] > 0 and m["versions"]["torch"].startswith("2.13.0")
    assert m["budget_s"] == 4 and m["train_time"] + m["val_time"] >= 4, "it trained for its whole budget"
    # that it stops there, whatever the machine's speed: test_the_budget_is_spent_training, on a clock of its own
    cfg = json.load(open(run / "config.json"))
    assert cfg["arch"] == "gru" and cfg["train"]["seed"] == 3 and cfg["data"]["task"] == "bracket"
    assert len(open(run / "curve.csv").read().splitlines()) >= 3


def test_arith_and_long_names(tmp_path):
    p, _ = run_cli("train.py", "transformer", "3s", "--task", "arith", "--format", "scratch", "--ops", "+-*",
                   *SMALL, "--set", "d_model=32", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [name] = visible_runs(tmp_path)
    assert name.startswith("tra_arith_")
    cfg = json.load(open(tmp_path / "models" / name / "config.json"))
    assert cfg["model"]["d_model"] == 32 and cfg["data"]["options"]["format"] == "scratch"
    p, _ = run_cli("predict.py", "--latest", "--json", "12*34", "5-3", cwd=tmp_path)  # a scratch-pad run answers in the natural order
    assert p.returncode == 0, p.stderr
    for line in p.stdout.splitlines():
        r = json.loads(line)
        assert r["answer"] == r["output"].rpartition("=")[2][::-1] and ("work" in r) == ("=" in r["output"])


@pytest.mark.parametrize("args", [
    ["foo", "1min"], ["gru", "10minutes"], ["gru", "-1min"], ["gru", "3days"], ["gru"],
    ["gru", "1min", "--task", "chess"], ["gru", "1min", "--set", "n_head=2"], ["gru", "1min", "--task", "bracket", "--digits", "2"],
    ["gru", "1min", "--resume", "models/nope"], ["gru", "1min", "--curriculum", "1"], ["gru", "1min", "--curriculum", "-0.1"],
])
def test_bad_input_is_one_line_error(tmp_path, args):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "keep.txt").write_text("x")
    p = run_main("train.py", *args, cwd=tmp_path)  # test_bad_data_line_is_one_line_error runs the script itself
    assert_one_line_error(p)
    assert os.listdir(tmp_path / "models") == ["keep.txt"]


def test_no_terminal_no_arguments_prints_usage(tmp_path):
    p, _ = run_cli("train.py", cwd=tmp_path)
    assert p.returncode != 0 and "usage:" in p.stderr and "Traceback" not in p.stderr


def read_until(fd, text, timeout=60):
    buf, end = b"", time.time() + timeout
    while text.encode() not in buf:
        if time.time() > end:
            raise AssertionError(f"did not see {text!r} in {buf.decode(errors='replace')!r}")
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf.decode(errors="replace")


def test_prompt_in_a_terminal(tmp_path):
    pid, fd = pty.fork()
    if pid == 0:  # the child: train.py with a terminal and no arguments
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, os.path.join(ROOT, "train.py"), *SMALL])
    read_until(fd, "Enter the model and training time")
    os.write(fd, b"gru 10minutes\n")
    assert "malformed budget" in read_until(fd, "Try again")
    os.write(fd, b"lstm 2s\n")
    out = read_until(fd, "saved models/", timeout=90)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    [name] = visible_runs(tmp_path)
    assert name.startswith("lstm_bracket_") and name.endswith("_2s")


def test_resume_continues_a_run(tmp_path):
    p, _ = run_cli("train.py", "gpt", "3s", *SMALL, "--set", "d_model=32", "--weight-decay", "0.05", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [first] = visible_runs(tmp_path)
    before = open(tmp_path / "models" / first / "model.safetensors", "rb").read()
    p, _ = run_cli("train.py", "gpt", "3s", "--resume", f"models/{first}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    second = [r for r in visible_runs(tmp_path) if r != first][0]
    cfg = json.load(open(tmp_path / "models" / second / "config.json"))
    m1 = json.load(open(tmp_path / "models" / first / "metrics.json"))
    m2 = json.load(open(tmp_path / "models" / second / "metrics.json"))
    assert cfg["resumed_from"] == f"models/{first}" and cfg["model"]["d_model"] == 32
    assert cfg["train"]["weight_decay"] == 0.05, "a resumed run keeps its weight decay"
    assert m2["total_steps"] == m1["steps"] + m2["steps"]
    assert open(tmp_path / "models" / first / "model.safetensors", "rb").read() == before, "the old run is untouched"
    p = run_main("train.py", "gru", "3s", "--resume", f"models/{first}", cwd=tmp_path)
    assert_one_line_error(p)
    for flags in (["--task", "arith"], ["--set", "d_model=64"], ["--max-len", "20"]):
        p = run_main("train.py", "gpt", "3s", "--resume", f"models/{first}", *flags, cwd=tmp_path)
        assert_one_line_error(p)
        assert "a resumed run keeps its own data" in p.stderr and flags[0] in p.stderr
    assert "and optimizer state" in run_cli("train.py", "gpt", "1s", "--resume", f"models/{first}", cwd=tmp_path)[0].stdout
    os.unlink(tmp_path / "models" / second / "optimizer.pt")
    p, _ = run_cli("train.py", "gpt", "1s", "--resume", f"models/{second}", cwd=tmp_path)
    assert p.returncode == 0 and "optimizer.pt is missing, so the optimizer starts afresh" in p.stdout, p.stdout + p.stderr


def start(tmp_path, *args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_for_training(proc):
    for line in proc.stdout:  # the first validation line means the loop is running
        if " 1/10: step" in line:
            return
    raise AssertionError("training never started")


def test_ctrl_c_saves_a_complete_run_and_kill_leaves_nothing_half_written(tmp_path):
    proc = start(tmp_path, "gru", "40s", *SMALL)
    wait_for_training(proc)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    [run] = visible_runs(tmp_path)
    assert json.load(open(tmp_path / "models" / run / "metrics.json"))["interrupted"] is True
    proc = start(tmp_path, "gru", "40s", *SMALL)
    wait_for_training(proc)
    proc.kill()
    proc.wait()
    assert visible_runs(tmp_path) == [run], "a killed run leaves no folder behind"
    assert json.load(open(tmp_path / "models" / run / "metrics.json"))["interrupted"] is True


def test_sigterm_saves_the_run_as_ctrl_c_does(tmp_path):
    """`kill -TERM` (docker stop, systemd, Slurm, timeout) mid-run: the interrupted run is saved,
    complete, and train.py exits 0 saying where."""
    proc = start(tmp_path, "gru", "1min", *SMALL)
    wait_for_training(proc)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "Traceback" not in out, out
    [run] = visible_runs(tmp_path)
    assert f"saved models/{run}" in out
    metrics = json.load(open(tmp_path / "models" / run / "metrics.json"))
    assert metrics["interrupted"] is True and metrics["steps"] > 0


def test_bad_data_line_is_one_line_error(tmp_path):
    p, _ = run_cli("dataset.py", *SMALL, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [folder] = (tmp_path / "data").iterdir()
    with open(folder / "val.jsonl", "a") as f:
        f.write("not json\n")
    p, _ = run_cli("train.py", "gru", "2s", *SMALL, cwd=tmp_path)
    assert_one_line_error(p)
    assert "val.jsonl:101: bad line" in p.stderr
    assert visible_runs(tmp_path) == []


def test_full_disk_keeps_the_trained_model(tmp_path, small_disk):
    """A models folder with no room: one line saying so and where the run went instead; nothing
    half-written in the full folder, and the rescued run is complete and loads."""
    full_disk = small_disk("200k")
    rescue = tmp_path / "tmp"
    rescue.mkdir()
    p, _ = run_cli("train.py", "gru", "2s", *SMALL, "--models-dir", str(full_disk), cwd=tmp_path,
                   env={"TMPDIR": str(rescue)})
    assert_one_line_error(p)
    assert "No space left on device" in p.stderr and "the run is saved at" in p.stderr, p.stderr
    assert os.listdir(full_disk) == [], "no partial or hidden folder left in the full one"
    [folder] = [f for f in os.listdir(rescue) if f.startswith("harness-rescue")]  # a fresh folder of this user's own (mkdtemp: mode 0700)
    assert folder.startswith(f"harness-rescue-{os.getuid()}-") and (rescue / folder).stat().st_mode & 0o777 == 0o700
    [run] = os.listdir(rescue / folder)
    assert str(rescue / folder / run) in p.stderr
    from runs import load_run
    rescued = load_run(rescue / folder / run)
    assert rescued.config["arch"] == "gru" and rescued.metrics["steps"] > 0


def test_a_rescue_folder_someone_else_made_first_is_not_used(tmp_path, monkeypatch):
    """The old fixed name (harness-rescue) made by another user, or a link planted there, is
    never written into: each rescue gets a new folder of its own."""
    import runs
    monkeypatch.setattr(runs.tempfile, "tempdir", str(tmp_path))
    (tmp_path / "harness-rescue").symlink_to(tmp_path / "trap")
    first, second = runs.rescue_dir(), runs.rescue_dir()
    assert first != second and not (tmp_path / "trap").exists()
    assert all(os.path.dirname(f) == str(tmp_path) and not os.path.islink(f) for f in (first, second))


@pytest.mark.parametrize("flag", ["--models-dir", "--data-dir"])
def test_a_folder_that_cannot_be_written_stops_the_run_before_it_trains(tmp_path, small_disk, flag):
    """A read-only --models-dir or --data-dir: one line naming the folder, the reason and the flag,
    before anything is made or trained (a 2-day budget: had it started, it would not end)."""
    read_only = small_disk("1m", read_only=True)
    p, _ = run_cli("train.py", "gru", "2days", *SMALL, flag, str(read_only / "x"), cwd=tmp_path, timeout=60)
    assert_one_line_error(p)
    assert f"cannot write in {read_only}/x/ (Read-only file system" in p.stderr and flag in p.stderr, p.stderr
    assert "step" not in p.stdout and visible_runs(tmp_path) == []


def test_the_budget_is_spent_training(tmp_path, monkeypatch):
    """The data is made before the clock starts and validation keeps to a small share of the
    budget. On a clock of the test's own (training.clock), so how fast the machine is does not
    enter: making the data takes 100 s, a training step 10 ms, a validated problem 1 ms. A 4 s
    budget then makes about 400 steps, spends at most a tenth of itself validating, and writes a
    curve whose times never run backwards."""
    import dataset as D
    import infer
    import layouts
    import training
    from settings import Request
    now = [1000.0]

    def spend(seconds, real):
        def call(*args, **kwargs):
            now[0] += seconds(*args)
            return real(*args, **kwargs)
        return call
    monkeypatch.setattr(training, "clock", lambda: now[0])
    monkeypatch.setattr(D, "prepare", spend(lambda *_: 100.0, D.prepare))
    monkeypatch.setattr(layouts, "loss", spend(lambda *_: 0.01, layouts.loss))
    monkeypatch.setattr(infer, "exact_match", spend(lambda model, codec, examples, *_: 0.001 * len(examples), infer.exact_match))
    spec = D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, 2000, 400, 50, 50)
    m = training.train(Request("gru", "4s", spec, model={"d_model": 16}, models_dir=str(tmp_path / "models"),
                               data_dir=str(tmp_path / "data")), quiet=True)
    assert m["setup_time"] >= 100 and 0.85 * 400 <= m["steps"] <= 400, m
    assert m["val_time"] <= 0.1 * m["budget_s"] and m["train_share"] >= 0.85, m
    rows = [r.split(",") for r in open(os.path.join(m["run"], "curve.csv")).read().splitlines()]
    assert rows[0][-1] == "val_n" and all(int(r[-1]) >= 50 for r in rows[1:])
    train_s = [float(r[3]) for r in rows[1:]]
    assert train_s == sorted(train_s) and train_s[0] >= 0, "train_s counts training only: it never falls"


def test_curve_counts_training_time_only(monkeypatch):
    """curve.csv's train_s at a validation point is the time trained so far: the elapsed time
    less the validations before it (it went negative when it took away the one just made)."""
    from types import SimpleNamespace

    import training
    from settings import Train
    now = [0.0]
    monkeypatch.setattr(training, "clock", lambda: now[0])
    monkeypatch.setattr(training.infer, "exact_match", lambda *_: now.__setitem__(0, now[0] + 5.0) or 1.0)
    loop, data = training.Loop(Train(), Budget(10, "s")), SimpleNamespace(val=list(range(100)))
    now[0] = 1.0
    loop.validate(None, data, None, None, "cpu", 1.0, 0.1)  # 1 s of training, then 5 s of validation
    now[0] += 2.0
    loop.validate(None, data, None, None, "cpu", now[0], 0.1)  # 2 s more of training
    assert [float(row.split(",")[3]) for row in loop.curve[1:]] == [1.0, 3.0]


def test_progress_never_shows_negative_time_left():
    from settings import Train
    from training import Loop
    loop = Loop(Train(), Budget(10, "s"))
    assert loop.info(12.4).endswith("12s / 0s left")


def test_a_step_budget_makes_the_same_run_on_any_machine(tmp_path):
    """`60steps` trains exactly 60 steps with the schedule and validation points following the
    steps, not the clock: two runs with the same seed, one of them on a machine slowed down by
    busy threads, save the same weights and the same score."""
    import safetensors.torch
    import torch
    runs = []
    for slow in (False, True):
        cwd = tmp_path / str(slow)
        cwd.mkdir()
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if slow else 0)]
        try:
            p, _ = run_cli("train.py", "gru", "60steps", *SMALL, "--set", "d_model=32", "--seed", "4", cwd=cwd)
        finally:
            for b in busy:
                b.kill()
        assert p.returncode == 0, p.stderr
        [name] = visible_runs(cwd)
        assert name.endswith("_60steps")
        runs.append(cwd / "models" / name)
    ms = [json.load(open(r / "metrics.json")) for r in runs]
    assert all(m["steps"] == 60 and m["budget_steps"] == 60 and m["budget_s"] is None for m in ms)
    assert ms[0]["test_em"] == ms[1]["test_em"] and ms[0]["final_loss"] == ms[1]["final_loss"]
    a, b = (safetensors.torch.load_file(r / "model.safetensors") for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for r in runs:  # validated along the way at 1/10 ... 9/10 of the steps, the last lr is near zero
        curve = open(r / "curve.csv").read().splitlines()[1:]
        steps = [int(row.split(",")[0]) for row in curve[:-1]]
        assert steps and all(s % 6 == 0 for s in steps), steps


def test_ctrl_c_during_the_imports_is_quiet(tmp_path):
    """Ctrl-C while train.py imports torch: exit 130, no traceback. The interrupt is sent by an
    audit hook the moment `import torch` begins (no guess at how long imports take)."""
    start = ("import os, runpy, signal, sys\n"
             "def hook(event, args):\n"
             "    if event == 'import' and args[0] == 'torch':\n"
             "        os.kill(os.getpid(), signal.SIGINT)\n"
             "sys.addaudithook(hook)\n"
             f"sys.argv = [{os.path.join(ROOT, 'train.py')!r}, 'gru', '1min']\n"
             "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    p = subprocess.run([sys.executable, "-c", start], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 130 and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "models").exists(), "nothing began"


def test_leftovers_of_killed_processes_are_cleaned_and_folders_follow_the_umask(tmp_path):
    """Hidden folders that a kill left in models/ and data/ go at the next start, unless their
    process still runs; run and data folders get the user's umask, not 0700."""
    (tmp_path / "models").mkdir()
    (tmp_path / "data").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / "models" / f".tmp-{dead.pid}-abc", tmp_path / "data" / f".tmp-{dead.pid}-def"]
    live = tmp_path / "models" / f".tmp-{os.getpid()}-ghi"
    for d in (*stale, live):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    p, _ = run_cli("train.py", "gru", "1s", *SMALL, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert not any(d.exists() for d in stale) and live.exists(), "only what no live process owns is removed"
    [run] = visible_runs(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(tmp_path / "models" / run).st_mode & 0o777) == 0o777 & ~umask
    [data] = os.listdir(tmp_path / "data")
    assert (os.stat(tmp_path / "data" / data).st_mode & 0o777) == 0o777 & ~umask


def test_interrupt_before_the_first_step_stays_an_interrupt(tmp_path, monkeypatch):
    """Ctrl-C (or hyper.py's SIGINT to a worker) that lands before the first step ends: train()
    raises KeyboardInterrupt, not the 'no training step' error a hyper.py worker would catch and
    go on past, and nothing is saved."""
    import dataset as D
    import layouts
    from settings import Request
    from training import train

    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(layouts, "loss", interrupted)
    cfg = Request(arch="gru", budget="5s", data=D.DataSpec("bracket", {"max_len": 8, "max_depth": 4}, 500, 50, 50, 50),
                      model={"d_model": 16}, models_dir=str(tmp_path / "models"), data_dir=str(tmp_path / "data"))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, quiet=True)
    assert visible_runs(tmp_path) == []


def test_bf16_autocast_trains_every_arch_and_keeps_float32_weights(tmp_path, monkeypatch):
    """--precision bf16 runs each architecture's forward pass and loss under bfloat16 autocast
    (fp32 does not); the loss falls, the saved weights stay float32, and --resume keeps the setting."""
    import math

    import torch
    from safetensors import safe_open

    import archs
    import dataset as D
    import settings as S
    import training as T
    seen = []
    real = T.layouts.loss
    monkeypatch.setattr(T.layouts, "loss", lambda *a, **k: seen.append(torch.is_autocast_enabled("cpu")) or real(*a, **k))
    spec = D.DataSpec("bracket", None, train_size=3000, val_size=100, test_size=100, ood_size=100)
    where = dict(models_dir=str(tmp_path / "models"), data_dir=str(tmp_path / "data"), device="cpu")
    runs = {}
    for arch in archs.ARCHS:
        seen.clear()
        m = runs[arch] = T.train(S.Request(arch=arch, budget="60steps", data=spec, precision="bf16", model={"d_model": 32}, **where),
                                 quiet=True)
        assert seen and all(seen), arch
        assert math.isfinite(m["final_loss"]) and m["final_loss"] < math.log(len(spec.codec())), arch
        with safe_open(os.path.join(m["run"], "model.safetensors"), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}, arch
    seen.clear()
    again = T.train(S.Request(arch="gpt", budget="5steps", resume=runs["gpt"]["run"], **where), quiet=True)
    assert all(seen) and json.load(open(os.path.join(again["run"], "config.json")))["train"]["precision"] == "bf16"
    seen.clear()
    T.train(S.Request(arch="gpt", budget="5steps", data=spec, model={"d_model": 32}, **where), quiet=True)
    assert seen and not any(seen), "fp32 is the default"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="ONEDNN_MAX_CPU_ISA is an x86 setting")
def test_bf16_lstm_trains_on_a_cpu_without_a_bf16_lstm_kernel(tmp_path):
    """oneDNN has no bfloat16 LSTM kernel below AVX-512 bf16 (CI has met such machines): there lstm's
    cell runs in float32 under --precision bf16 instead of raising. ONEDNN_MAX_CPU_ISA=AVX2 makes any
    x86 machine one of them; a control in the same process shows the kernel is really missing."""
    probe = ("import torch, archs.rnn as R\n"
             "try:\n"
             "    with torch.autocast('cpu', torch.bfloat16): torch.nn.LSTM(8, 8, 2)(torch.zeros(3, 1, 8))\n"
             "    print('kernel')\n"
             "except RuntimeError:\n"
             "    print('no kernel', R.cpu_has_bf16_lstm())\n")
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    p = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    assert p.stdout.strip() == "no kernel False", p.stdout + p.stderr
    p, _ = run_cli("train.py", "lstm", "30steps", "--precision", "bf16", "--set", "n_layer=2", "--set", "d_model=32",
                   *SMALL, "--models-dir", str(tmp_path / "models"), "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    run, = [d for d in os.listdir(tmp_path / "models") if not d.startswith(".")]
    assert json.load(open(tmp_path / "models" / run / "config.json"))["train"]["precision"] == "bf16"


def test_a_length_curriculum_draws_the_short_prompts_first():
    """Each window of 32 batches comes from the prompts no longer than the cap then (at least a
    batch's worth of the shortest); the cap grows linearly with the budget's share and the
    curriculum ends at its share."""
    import torch
    prompt = torch.arange(1, 31).repeat(20)
    caps = iter([1, 1, 10, None])
    got = list(shortest_first(prompt, prompt + 2, 8, torch.Generator().manual_seed(0), True, lambda: next(caps)))
    assert len(got) == 3 * 32 and all(len(b) == 8 for b in got)
    assert set(prompt[torch.cat(got[:64])].tolist()) == {1}
    third = prompt[torch.cat(got[64:])]
    assert third.max() == 10 and len(set(third.tolist())) == 10
    for b in got:  # bucketed: a batch holds similar lengths
        assert prompt[b].max() - prompt[b].min() <= 3
    assert [curriculum_cap(f, 0.5, 1, 31) for f in (0, 0.25, 0.499, 0.5, 0.9)] == [1, 16, 30, None, None]
    assert curriculum_cap(0.1, 0.0, 1, 31) is None


def test_curriculum_is_a_training_setting_of_the_run(tmp_path):
    p, _ = run_cli("train.py", "gru", "40steps", *SMALL, "--set", "d_model=16", "--curriculum", "0.5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [name] = visible_runs(tmp_path)
    cfg = json.load(open(tmp_path / "models" / name / "config.json"))
    assert cfg["train"]["curriculum"] == 0.5
    m = json.load(open(tmp_path / "models" / name / "metrics.json"))
    assert m["steps"] == 40


def test_tensorboard_events_are_read_back(tmp_path):
    """--tensorboard: the run folder holds TensorBoard event files with loss, learning rate,
    validation exact match and samples/s at every validation point, the final scores and the
    settings as hparams; nothing is left in models/ beside the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    p = run_main("train.py", "gru", "40steps", "--tensorboard", *SMALL, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    [name] = visible_runs(tmp_path)
    assert sorted(os.listdir(tmp_path / "models")) == [name], "no staging folder left behind"
    events = EventAccumulator(str(tmp_path / "models" / name / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "lr", "val_em", "samples_per_s", "final/test_em", "final/ood_em", "hparam/test_em"} <= tags, tags
    curve = [int(row.split(",")[0]) for row in open(tmp_path / "models" / name / "curve.csv").read().splitlines()[1:-1]]
    assert curve and [e.step for e in events.Scalars("val_em")] == curve, "the same points as curve.csv"
    metrics = json.load(open(tmp_path / "models" / name / "metrics.json"))
    assert events.Scalars("final/test_em")[0].value == pytest.approx(metrics["test_em"])
    plugin = events.PluginTagToContent("hparams")
    assert plugin, "the settings as hparams"
