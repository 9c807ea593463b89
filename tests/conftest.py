import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Small splits keep CLI tests quick; the frozen-test-set rules are checked on full sizes elsewhere.
SMALL = ["--train-size", "3000", "--val-size", "100", "--test-size", "200", "--ood-size", "100"]


def run_cli(script, *args, cwd, timeout=120, env=None, input=None):
    """Run one of the project's scripts (`train.py`) or modules (`bench`, `bench.finetune`) with no
    terminal (input, if given, on its standard input); returns (CompletedProcess, seconds)."""
    t = time.time()
    command = [os.path.join(ROOT, script)] if script.endswith(".py") else ["-m", script]
    p = subprocess.run([sys.executable, *command, *args], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, input=input, stdin=subprocess.DEVNULL if input is None else None,
                       env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})
    return p, time.time() - t


def run_main(script, *args, cwd, env=None):
    """Call a script's main(args) in this process, as run_cli runs it (in cwd, with env, no
    terminal, nothing on standard input), without the new interpreter's 2-3 s of imports: for the
    many bad-input cases, each script keeping one through run_cli. Returns what run_cli's process
    has: returncode, stdout, stderr (with the traceback of any exception that escapes main)."""
    import contextlib
    import importlib
    import io
    import signal
    import traceback
    main = importlib.import_module(script.removesuffix(".py").replace("/", ".")).main
    out, err, handlers = io.StringIO(), io.StringIO(), {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_env, saved_stdin, saved_argv, here = dict(os.environ), sys.stdin, sys.argv, os.getcwd()
    os.environ.update(env or {})
    os.chdir(cwd)
    sys.stdin, sys.argv = io.StringIO(""), [script, *args]  # argparse names the program after argv[0]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) or e.code is None else (print(e.code, file=sys.stderr) or 1)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        sys.stdin, sys.argv = saved_stdin, saved_argv
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved_env)
        for s, h in handlers.items():
            signal.signal(s, h)
    return subprocess.CompletedProcess([script, *args], code or 0, out.getvalue(), err.getvalue())


def assert_one_line_error(p):
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, p.stderr


def train_one(cwd, *args):
    p, _ = run_cli("train.py", *args, *SMALL, cwd=cwd)
    assert p.returncode == 0, p.stderr
    runs = [d for d in os.listdir(cwd / "models") if not d.startswith(".")]
    assert len(runs) == 1
    return cwd, cwd / "models" / runs[0]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One real 3-second gru run on small bracket data, shared by the evaluate, predict and serve tests."""
    return train_one(tmp_path_factory.mktemp("work"), "gru", "3s")


@pytest.fixture(scope="session")
def arith_run(tmp_path_factory):
    """One real 3-second gpt run on + and - with reversed answers."""
    return train_one(tmp_path_factory.mktemp("arith"), "gpt", "3s", "--task", "arith", "--ops", "+-", "--format", "reversed")


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(size) -> a folder on a tmpfs of that size (e.g. "200k"): writes past it fail with
    ENOSPC, as on a full disk; small_disk(size, read_only=True): every write fails with EROFS,
    even root's. Needs root to mount (CI runs as root)."""
    mounted = []

    def mount(size, read_only=False):
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
        if p.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs for the full-disk test: {p.stderr.strip()}")
            pytest.skip(f"cannot mount a tmpfs (needs root): {p.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)
