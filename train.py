"""Train one architecture on one task for a wall-clock budget, then save and score the run
(the command line of training.train; settings.py decides every setting not given).

    python train.py                          # asks: e.g. `gru 10min`, `tra 1hour`, `gpt 1min`
    python train.py gru 1min                 # the same for scripts
    python train.py gpt 10min --task arith --digits 3 --ops +- --format reversed
    python train.py gru 5min --resume models/gru_bracket_20261122_101500_1min
    python train.py gpt 1min --set n_layer=3 --set d_model=96 --lr 2e-3
    python train.py gpt 30000steps --task arith   # a step budget: the same run on any machine

The clock starts once the data is prepared and the model and optimizer are built (that setup is
timed and reported apart); the budget covers training and its periodic validation, which is held
to a small share of it. Then the validation and test splits are scored and the run is saved,
which takes a few seconds. The learning rate follows the budget: linear warm-up over the first
`--warmup` share of the time, then cosine decay to zero when the time is spent.

A budget may count optimizer steps instead (`30000steps`): the schedule and the validation points
then follow the share of steps taken, so a run does the same work, bit for bit on one machine,
however busy the machine is. That is the budget for comparing two settings; a time budget is the
one for asking what a machine buys in ten minutes.
"""
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import re

import archs
import dataset as D
import lora
from cli import Parser, add_device_args, add_models_dir, ask, fail
from errors import SettingsError, UserError
from runs import read_run_files
from settings import BUDGET_HELP, Budget, Request, parse_set
from training import train


def parse_choice(text: str) -> tuple[str, str]:
    """`gru 10min` -> ('gru', '10min'); SettingsError explaining what is expected."""
    parts = text.split()
    if len(parts) != 2:
        raise SettingsError(f"expected an architecture and a budget, e.g. 'gru 10min' (architectures: {', '.join(archs.ARCHS)})")
    arch = archs.resolve(parts[0])
    Budget.parse(parts[1])
    return arch, parts[1]


def prompt_choice(console) -> tuple[str, str]:
    console.print("Choose a model and a training time, e.g. [bold]gru 1min[/], [bold]tra 10min[/], "
                  "[bold]lstm 1hour[/], [bold]ber 10min[/], [bold]gpt 1min[/] (up to 2days).")
    return ask("Enter the model and training time: ", parse_choice, console)


def resume_check(p, a):
    """--resume continues a run on its own data: a data flag that says otherwise is refused
    (dataset.check_kept); settings.resolve refuses --set and another architecture."""
    old, _ = read_run_files(a.resume)
    spec = D.DataSpec(**old["data"])
    spec.task_instance  # noqa: B018 -- a task or options this version refuses: one line now
    D.check_kept(a, p, spec, a.resume,
                 "a resumed run keeps its own data and model settings (train a new run for others)")


def build_parser():
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    p.add_argument("arch", nargs="?", help=f"architecture: {', '.join(archs.ARCHS)} (long names too: {', '.join(archs.ALIASES)})")
    p.add_argument("budget", nargs="?", help=BUDGET_HELP)
    D.add_data_args(p)
    g = p.add_argument_group("training (each defaults to the architecture's for the task: settings.py)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="model setting, e.g. --set d_model=96 (repeatable)")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--batch-size", type=int, help="examples per step")
    g.add_argument("--warmup", type=float, help="share of the budget for warm-up")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay on weight matrices")
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm to this (0: no clipping; default 1)")
    g.add_argument("--precision", choices=["fp32", "bf16"],
                   help="bf16: forward pass and loss under bfloat16 autocast, weights stay float32 (default fp32)")
    g.add_argument("--seed", type=int, help="seed of initialisation and batch order (default 0)")
    add_device_args(g)
    g.add_argument("--no-bucket", action="store_true", help="do not batch examples of similar length together")
    g.add_argument("--curriculum", type=float, metavar="SHARE",
                   help="length curriculum: over this share of the budget the longest input a batch may hold grows from "
                        "the shortest to the longest in training (default: none)")
    add_models_dir(g)
    g.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files into the run folder (tensorboard --logdir models compares runs)")
    g.add_argument("--resume", metavar="RUN", help="continue a saved run (its model, data and settings) with a new budget")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--init-from", metavar="RUN", help="start from a saved run's weights and codec, on the task given here")
    g.add_argument("--lora", type=int, metavar="R", help="with --init-from: train rank-R adapters instead of every weight")
    g.add_argument("--lora-alpha", type=float, help="adapter scale alpha/R (default alpha = 2R)")
    g.add_argument("--lora-targets", help=f"weights to adapt: {', '.join(lora.TARGETS)} or all (default attn,mlp,rnn)")
    return p


def request_of(a, arch: str, budget: str) -> Request:
    """The Request the parsed flags make (a flag not given: None, so settings.resolve decides)."""
    return Request(arch=arch, budget=budget, data=D.spec_from_args(a), model=parse_set(a.set), lr=a.lr,
                   batch_size=a.batch_size, warmup=a.warmup, weight_decay=a.weight_decay, grad_clip=a.grad_clip,
                   precision=a.precision, curriculum=a.curriculum, bucket=False if a.no_bucket else None, seed=a.seed,
                   resume=a.resume, init_from=a.init_from, lora=a.lora, lora_alpha=a.lora_alpha, lora_targets=a.lora_targets,
                   device=a.device, threads=a.threads, models_dir=a.models_dir, data_dir=a.data_dir, tensorboard=a.tensorboard)


def main(argv=None):
    cli.catch_ctrl_c()
    p = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and re.match(r"-\d", argv[1]):  # argparse would take `-1min` for an option
        fail(f"malformed budget {argv[1]!r}; expected {BUDGET_HELP}")
    a = p.parse_args(argv)
    console = cli.console()
    try:
        if a.arch is None and a.budget is None:
            if not sys.stdin.isatty():
                p.print_usage(sys.stderr)
                fail("give an architecture and a budget, e.g. `python train.py gru 1min` (no terminal to ask on)")
            arch, budget = prompt_choice(console)
        elif a.budget is None:
            fail(f"missing budget after {a.arch!r}; expected {BUDGET_HELP}")
        else:
            arch, budget = parse_choice(f"{a.arch} {a.budget}")
        if a.resume:
            resume_check(p, a)
        m = train(request_of(a, arch, budget), console)
        if m["save_problem"]:
            fail(f"{m['save_problem']}; the run is saved at {m['run']} instead (move it under {a.models_dir}/ to use it there)", 1)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; nothing was saved", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
