"""See inside a trained run: how it answers one problem (the command line of inspection.py).

    python explain.py models/<run> '(((['          # the answer, and explain_<n>.png in the run folder
    python explain.py --latest '12*3' --json       # the numbers: every panel's values as JSON
    python explain.py                              # pick a run, then type a problem

The picture has a row per panel of the architecture's explain(): the attention weights of every
layer and head for tra (encoder, decoder, cross), ber (the slots over the prompt) and gpt, with
the position bias (ALiBi, FIRE) as a panel of its own; the hidden state over the tokens for gru
and lstm, and the memory's actions for stack and tape. Its last row is the probability of each
token of the answer. A problem is read as predict.py reads it.
"""
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import json
import os

import inspection
from cli import Parser, add_device_args, add_run_args, fail, pick_run, use_device
from errors import UserError
from files import write_bytes
from runs import load_run
from scoring import next_free


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    add_run_args(p, "explain")
    p.add_argument("problem", nargs="?", help="the problem to answer (default: asked at the terminal)")
    p.add_argument("--json", action="store_true", help="print the answer and every panel's values as JSON (no picture)")
    p.add_argument("--out", help="where to write the picture (default: explain.png in the run folder, numbered)")
    add_device_args(p)
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    if a.latest and a.run and not a.problem:  # with --latest the one positional is the problem
        a.problem, a.run = a.run, None
    try:
        device = use_device(a)
        path = pick_run(a.run, a.latest, a.models_dir, "explain")
        run = load_run(path, device)
        if a.problem is None:
            if not sys.stdin.isatty():
                fail("give a problem to explain (no terminal to ask on)")
            a.problem = cli.console().input("problem> ")
        result = inspection.inspect(run, a.problem, device)
        if a.json:
            print(json.dumps(inspection.as_json(result), ensure_ascii=False))
            return 0
        out = a.out or next_free(os.path.join(path, "explain.png"))
        write_bytes(out, inspection.draw(result))
        print(f"{result['problem']} → {result['answer'] or '(nothing)'}  ({result['probability']:.2%})")
        for w in result["warnings"]:
            print(f"  warning: {w}")
        print(f"written: {out}")
    except UserError as e:
        fail(str(e))
    except OSError as e:
        fail(f"could not write {e.filename or 'the picture'} ({e.strerror or e})")
    except KeyboardInterrupt:
        fail("interrupted", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
