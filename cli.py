"""The command line every script shares: one-line errors, Ctrl-C while imports load, the run a
script works on (a folder, --latest or a choice at the terminal, under --models-dir), the device
and CPU threads (devices.choose), the console, and asking at the terminal until an answer is valid.

It imports nothing heavy at the top, so a script imports it first:

    import cli
    if __name__ == "__main__":
        cli.quiet_ctrl_c()      # before torch loads
    ...
    def main(argv=None):
        cli.catch_ctrl_c()      # from here Ctrl-C is a KeyboardInterrupt the script handles
        try:
            ...
        except UserError as e:  # errors.py: the errors a user can cause; anything else is a bug
            cli.fail(str(e))
"""
import argparse
import os
import signal
import sys

from errors import SettingsError, UserError


def quiet_ctrl_c():
    """Ctrl-C while a script's imports load exits 130 without a traceback (os._exit: no exception
    raised into a C++ import)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def catch_ctrl_c():
    """From here Ctrl-C and SIGTERM (what `kill`, `docker stop`, systemd, Slurm and `timeout`
    send) are both a KeyboardInterrupt: train.py saves the interrupted run, hyper.py and bench
    end their current work the same way."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


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
    import devices
    return devices.choose(a.device, a.threads)


# ----------------------------------------------------------------------------- the terminal

def console(stderr: bool = False):
    """The console scripts print with: no highlighting, and lines never wrapped when the output is
    not a terminal (a log keeps a suggested command on one line); tables fit the width as ever."""
    from rich.console import Console
    return Console(highlight=False, stderr=stderr, soft_wrap=not (sys.stderr if stderr else sys.stdout).isatty())


def ask(question: str, parse, out=None):
    """Ask at the terminal until parse(answer) returns a value instead of raising UserError (its
    message is shown, then the question again); no answer (end of input) is a one-line error."""
    out = out or console()
    while True:
        try:
            answer = out.input(question).strip()
        except EOFError:
            fail("no answer given")
        try:
            return parse(answer)
        except UserError as e:
            out.print(f"[red]{e}[/red] Try again.")


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
    from rich.table import Table
    t = Table(title="Available runs (latest first)")
    for c in ("#", "run", "arch", "task", "budget", "test EM"):
        t.add_column(c)
    for i, r in enumerate(runs, 1):
        em = f"{r['test_em']:.2%}" if isinstance(r["test_em"], (int, float)) else "-"
        t.add_row(str(i), os.path.basename(r["run"]), str(r["arch"]), str(r["task"]), str(r["budget"]), em)
    out = console()
    out.print(t)
    return runs[ask(f"Enter the number of the run to {verb} (1-{len(runs)}): ", number_in(1, len(runs)), out) - 1]["run"]


def number_in(lo: int, hi: int):
    """A parse for ask: a whole number from lo to hi."""
    def parse(text):
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise SettingsError(f"'{text}' is not a number between {lo} and {hi}.")
        return int(text)
    return parse
