"""The command line every script shares: one-line errors, Ctrl-C while imports load, the run a
script works on (a folder, --latest or a choice at the terminal, under --models-dir), the device
and CPU threads, and asking at the terminal until an answer is valid.

It imports nothing heavy at the top, so a script imports it first:

    import cli
    if __name__ == "__main__":
        cli.quiet_ctrl_c()      # before torch loads
    ...
    def main(argv=None):
        cli.catch_ctrl_c()      # from here Ctrl-C is a KeyboardInterrupt the script handles
"""
import argparse
import os
import signal
import sys


class UserError(Exception):
    """An error the user can fix (a bad option, a missing or damaged folder): printed as one line."""


def quiet_ctrl_c():
    """Ctrl-C while a script's imports load exits 130 without a traceback (os._exit: no exception
    raised into a C++ import)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def catch_ctrl_c():
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the full usage stays behind --help)."""

    def error(self, message):
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str, code: int = 2):
    """Print a one-line error and exit: for errors a user can cause."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


# ----------------------------------------------------------------------------- shared options

def add_run_args(p: argparse.ArgumentParser, verb: str):
    """The run a script works on: a folder, the newest with --latest, else a choice at the terminal."""
    p.add_argument("run", nargs="?", help="a run folder, e.g. models/gru_bracket_20261122_101500_1min")
    p.add_argument("--latest", action="store_true", help=f"{verb} the newest run")
    add_models_dir(p)


def add_models_dir(p: argparse.ArgumentParser):
    p.add_argument("--models-dir", default="models", help="where runs live (default models/)")


def add_device_args(p: argparse.ArgumentParser):
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")


def use_device(a):
    """The device --device names, with torch's CPU threads set to --threads when given."""
    import torch
    if a.threads is not None:
        if a.threads < 1:
            raise UserError(f"--threads must be at least 1, got {a.threads}")
        torch.set_num_threads(a.threads)
    return pick_device(a.device)


def pick_device(name: str = "auto"):
    """The device a script runs on: `auto` is the GPU when there is one, else the CPU."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use --device cpu or auto")
    return device


# ----------------------------------------------------------------------------- the terminal

def ask(question: str, parse, console=None):
    """Ask at the terminal until parse(answer) returns a value instead of raising ValueError (its
    message is shown, then the question again); no answer (end of input) is a one-line error."""
    if console is None:
        from rich.console import Console
        console = Console(highlight=False)
    while True:
        try:
            answer = console.input(question).strip()
        except EOFError:
            fail("no answer given")
        try:
            return parse(answer)
        except ValueError as e:
            console.print(f"[red]{e}[/red] Try again.")


def pick_run(path, latest: bool, root, verb: str) -> str:
    """The run a script works on: the folder given, the newest with --latest, else one chosen at
    the terminal; UserError when there is none or no terminal to ask on."""
    from runs import list_runs
    if path:
        return str(path).rstrip("/")
    runs = list_runs(root)
    if not runs:
        raise UserError(f"no saved runs under {root}/; train one with: python train.py gru 1min")
    if latest:
        return runs[0]["run"]
    if not sys.stdin.isatty():
        raise UserError("give a run folder or --latest (no terminal to ask on)")
    from rich.console import Console
    from rich.table import Table
    t = Table(title="Available runs (latest first)")
    for c in ("#", "run", "arch", "task", "budget", "test EM"):
        t.add_column(c)
    for i, r in enumerate(runs, 1):
        em = f"{r['test_em']:.2%}" if isinstance(r["test_em"], (int, float)) else "-"
        t.add_row(str(i), os.path.basename(r["run"]), str(r["arch"]), str(r["task"]), str(r["budget"]), em)
    console = Console(highlight=False)
    console.print(t)
    return runs[ask(f"Enter the number of the run to {verb} (1-{len(runs)}): ", number_in(1, len(runs)), console) - 1]["run"]


def number_in(lo: int, hi: int):
    """A parse for ask: a whole number from lo to hi."""
    def parse(text):
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise ValueError(f"'{text}' is not a number between {lo} and {hi}.")
        return int(text)
    return parse
