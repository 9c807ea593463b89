"""Ask a trained run: type a problem, see its answer and how sure the model is.

    python predict.py                             # list runs (newest first), pick one, then type problems
    python predict.py models/<run>                # type problems at a prompt (or --latest for the newest run)
    python predict.py models/<run> '12*3' '-4+3'  # answer these and exit
    printf '(((\\n【{\\n' | python predict.py models/<run>          # one answer per input line
    printf '12*3\\n' | python predict.py models/<run> --json       # JSON Lines, one object per input

What you type is read the way the run's task reads it (tasks/): spaces and a trailing `=` go,
`×` `÷` `−` and full-width characters become `*` `/` `-`, a negative second operand is
parenthesised whether you typed the parentheses or not. The run answers with the codec it was
trained with, greedily, as evaluate.py scores it. Each answer comes with its probability (the
product of the probabilities of its tokens, <eos> included) and what its task shows beside an
answer (arithmetic: the equation in LaTeX). A problem the run was not trained on (longer, deeper, more digits, another operation) is
answered with a warning; one the codec or the task cannot take gets a one-line reason instead
(exit code 2 when problems come as arguments or on standard input; the prompt goes on).
"""
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import json

import torch
from rich.console import Console
from rich.markup import escape

from cli import Parser, add_device_args, add_run_args, fail, pick_run, use_device
from errors import UserError
from infer import ask
from onnxrun import add_runtime_argument
from runs import load_run

console = Console(highlight=False, soft_wrap=True)


def show(result: dict, extras: dict):
    """One answer for people: `12*3 → 36  (its probability)`, each of the task's extras the answer
    has (extras: key -> label, e.g. LaTeX), then any warnings."""
    if "error" in result:
        console.print(f"[red]error: {escape(result['error'])}[/red]")
        return
    answer = result["answer"] if result["answer"] else "(nothing)"
    console.print(f"{escape(result['problem'])} → [bold]{escape(answer)}[/bold]  ({result['probability']:.2%})")
    for key, label in extras.items():
        if result.get(key) is not None:
            console.print(f"  {escape(label)}: {escape(str(result[key]))}")
    for w in result["warnings"]:
        console.print(f"  [yellow]warning: {escape(w)}[/yellow]")


def emit(results, extras: dict, as_json: bool, one_per_line: bool) -> int:
    """Print results; the number of problems that could not be answered."""
    bad = 0
    for r in results:
        bad += "error" in r
        if as_json:
            print(json.dumps(r, ensure_ascii=False), flush=True)
        elif one_per_line:  # standard input: line k of the output answers line k of the input
            print(r.get("answer", ""), flush=True)
            for w in ([r["error"]] if "error" in r else r["warnings"]):
                print(f"{'error' if 'error' in r else 'warning'}: {r['input']!r}: {w}", file=sys.stderr)
        else:
            show(r, extras)
    return bad


def header(run):
    m, opts = run.metrics, run.task.cfg.__dict__
    em = f", test exact match {m['test_em']:.2%}" if isinstance(m.get("test_em"), (int, float)) else ""
    console.print(f"[bold]{escape(run.path)}[/bold]: {run.config['arch']} on {run.task.name} "
                  f"({escape(', '.join(f'{k}={v}' for k, v in opts.items()))}){em}")
    example = run.task.sample(torch.Generator().manual_seed(0), 1)[0].input
    console.print(f"Type a problem, e.g. {escape(example)}; an empty line or Ctrl-D ends.")


def prompt_loop(run, device):
    header(run)
    while True:
        try:
            text = console.input("[bold]problem>[/bold] ")
        except EOFError:
            console.print()
            return 0
        if not text.strip():
            return 0
        show(ask(run, [text], device)[0], run.task.extras)


VALUED = ("--models-dir", "--device", "--threads", "--runtime")  # the options that take a value


def positionals_last(argv: list[str]) -> list[str]:
    """argv with every non-option argument moved, in order, after `--`: problems may come before
    or after options, and one like `-4+3` is not taken for an option."""
    if "--" in argv:
        return argv
    options, rest, i = [], [], 0
    while i < len(argv):
        x = argv[i]
        if x in VALUED:
            options += argv[i: i + 2]
            i += 2
            continue
        (options if x.startswith("--") or x in ("-h",) else rest).append(x)
        i += 1
    return [*options, "--", *rest]


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    add_run_args(p, "ask")
    p.add_argument("problems", nargs="*", help="problems to answer, then exit (default: a prompt, or standard input)")
    p.add_argument("--json", action="store_true", help="print JSON Lines: one object per problem")
    add_device_args(p)
    add_runtime_argument(p)
    a = p.parse_args(positionals_last(sys.argv[1:] if argv is None else argv))
    if a.latest and a.run:  # with --latest every positional is a problem
        a.problems, a.run = [a.run, *a.problems], None
    try:
        device = use_device(a)
        path = pick_run(a.run, a.latest, a.models_dir, "ask")
        run = load_run(path, device, a.runtime)
        if a.problems:
            return 2 if emit(ask(run, a.problems, device), run.task.extras, a.json, one_per_line=False) else 0
        if not sys.stdin.isatty():
            lines = sys.stdin.read().splitlines()
            return 2 if emit(ask(run, lines, device), run.task.extras, a.json, one_per_line=True) else 0
        return prompt_loop(run, device)
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        console.print()
        return 130
    except BrokenPipeError:  # `python predict.py ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
