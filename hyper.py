"""Tune an architecture with an Optuna study kept in a relational database (the command line of
studies.py, which says how trials, workers and storage work).

    python hyper.py                                   # asks: resume or new, architecture, times, workers
    python hyper.py --arch gru --task bracket --time 30min --trial-budget 1min --workers 2
    python hyper.py --resume --study hyper_gru_bracket_1 --time 10min
    python hyper.py --report --study hyper_gru_bracket_1
    python hyper.py --list

Each trial is one training run with settings drawn from the architecture's search space; the
first trial of a new study is exactly what train.py would train. `--storage postgresql://...`
shares a study between machines; `--trial-budget 3000steps` makes every trial the same work on
machines of different speeds.
"""
import os
import signal
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse

import torch

import archs
import dataset as D
from cli import Parser, ask, fail
from errors import SettingsError, StudyError, UserError
from settings import BUDGET_HELP, TIME_HELP, Budget, parse_budget
from studies import (
    DEFAULT_STORAGE,
    DEFAULT_TRIAL_BUDGET,
    WORKERS_PER_GPU,
    check_study_name,
    console,
    default_workers,
    list_studies,
    load_study,
    new_study,
    open_storage,
    report,
    run_study,
    study_settings,
)


def one_of_1_2(text):
    if text not in ("1", "2"):
        raise SettingsError(f"{text!r} is not 1 or 2.")
    return int(text)


def positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise SettingsError(f"{text!r} is not a whole number of at least 1.")
    return int(text)


def budget(text):
    parse_budget(text)
    return text


def trial_budget(text):
    Budget.parse(text)
    return text


def interactive(a):
    choice = ask("Choose an option:\n1. Resume existing study\n2. Start a new study\nEnter 1 or 2: ", one_of_1_2)
    if choice == 1:
        summaries = list_studies(a.storage)
        if not summaries:
            fail("there is no study to resume; start a new one")
        k = ask(f"Enter the number of the study (1-{len(summaries)}): ", positive_int)
        if k > len(summaries):
            fail(f"there is no study number {k}")
        a.study, a.resume = summaries[k - 1].study_name, True
    else:
        a.arch = ask(f"Enter the model architecture ({', '.join(archs.ARCHS)}): ", archs.resolve)
        a.trial_budget = ask("Enter the training time of each trial (e.g. '30s', '1min', '10min', or steps: '3000steps'): ",
                             trial_budget)
    a.time = ask("Enter the study's time limit (e.g. '3min', '1hour', '5hour'): ", budget)
    default = default_workers(os.cpu_count() or 1, torch.cuda.device_count())
    a.workers = ask(f"Enter the number of parallel workers (this machine has {os.cpu_count()} cores; empty: {default}): ",
                    lambda text: positive_int(text) if text else default)
    return a


def check_resume_args(a, parser, settings: dict):
    """A study keeps the architecture, data and trial budget it was made with (its trials are
    compared with each other): on --resume, an option that says otherwise is an error, not ignored."""
    def refuse(flag, made, given):
        flag = "--" + flag.replace("_", "-")
        was = f"without {flag}" if made is None else f"with {flag} {made}"
        raise StudyError(f"study {a.study!r} was made {was}, not {flag} {given}: {keeps}")
    keeps = "a resumed study keeps its architecture, data and trial budget (start a new study for others)"
    if a.arch and archs.resolve(a.arch) != settings["arch"]:
        refuse("arch", settings["arch"], a.arch)
    if a.trial_budget and Budget.parse(a.trial_budget) != Budget.parse(settings["trial_budget"]):
        refuse("trial_budget", settings["trial_budget"], a.trial_budget)
    try:
        D.check_kept(a, parser, D.DataSpec(**settings["data"]), f"study {a.study!r}", keeps)
    except D.DataError as e:
        raise StudyError(str(e)) from None


def interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--arch", help=f"architecture to tune: {', '.join(archs.ARCHS)}")
    p.add_argument("--time", help=f"the study's time limit ({TIME_HELP})")
    p.add_argument("--trial-budget", help=f"each trial's training ({BUDGET_HELP}; default {DEFAULT_TRIAL_BUDGET})")
    p.add_argument("--workers", type=int, help=f"worker processes on this machine (default: 1 without a GPU, else "
                                               f"{WORKERS_PER_GPU} per GPU, at most one per core)")
    p.add_argument("--trials", type=int, help="stop after this many trials (default: only the time limit)")
    p.add_argument("--study", help="study name (default for a new study: hyper_<arch>_<task>_<n>)")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"database URL (default {DEFAULT_STORAGE})")
    p.add_argument("--resume", action="store_true", help="continue the study named by --study")
    p.add_argument("--report", action="store_true", help="print the trials table, write trials.csv and plots")
    p.add_argument("--list", action="store_true", help="list the studies in the storage")
    p.add_argument("--seed", type=int, default=0, help="a new study's seed (default 0; recorded "
                   "with it): trial n draws its parameters and trains from the seed and n")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between a worker's heartbeats (default 10)")
    p.add_argument("--grace", type=int, default=30, help="seconds without a heartbeat before a trial counts as dead")
    D.add_data_args(p)
    p.add_argument("--device", default="auto", help="where the trials train: auto (the GPUs in turn when there are any) "
                                                    "| cpu | cuda | cuda:N")
    p.add_argument("--tensorboard", action="store_true", help="each trial's run also gets TensorBoard event files "
                                                              "(tensorboard --logdir optuna_studies)")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops a study as Ctrl-C does: workers stop, trials closed
    try:
        if a.study:
            check_study_name(a.study)
        if a.list:
            list_studies(a.storage, a.grace)
            return 0
        if a.report:
            if not a.study:
                fail("--report needs --study NAME")
            report(a.storage, a.study, a.grace)
            return 0
        if not a.arch and not a.resume:
            if not sys.stdin.isatty():
                p.print_usage(sys.stderr)
                fail("give --arch (new study) or --resume --study NAME, and --time (no terminal to ask on)")
            a = interactive(a)
        if not a.time:
            fail(f"--time is required ({TIME_HELP})")
        time_s = parse_budget(a.time)
        cores = os.cpu_count() or 1
        if a.workers is None:
            a.workers = default_workers(cores, torch.cuda.device_count())
        if not 1 <= a.workers <= cores:
            fail(f"--workers must be between 1 and {cores} (the cores of this machine); each worker trains on its own core(s)")
        storage = open_storage(a.storage)
        if a.resume:
            if not a.study:
                fail("--resume needs --study NAME (see python hyper.py --list)")
            study = load_study(storage, a.study)
            check_resume_args(a, p, study_settings(study))
        else:
            arch = archs.resolve(a.arch)
            a.trial_budget = a.trial_budget or DEFAULT_TRIAL_BUDGET
            Budget.parse(a.trial_budget)
            study = new_study(storage, arch, D.spec_from_args(a), a.trial_budget, a.study, a.seed)
            console.print(f"study {study.study_name} created in {a.storage}")
        if run_study(a.storage, study.study_name, time_s, a.workers, a.trials, a.seed, a.heartbeat, a.grace, a.device,
                     a.tensorboard):
            return 130
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
