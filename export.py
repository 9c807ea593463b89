"""Carry a run out of Python and PyTorch: ONNX export with a parity check, and int8 quantisation
(the command line of onnxexport.py, which says how).

    python export.py models/<run>             # model.onnx (+ step.onnx), weights.data, codec.json, export.json in the run folder
    python export.py models/<run> --int8      # also model.int8.onnx (+ step.int8.onnx), weights.int8.data
    python evaluate.py models/<run> --runtime onnx      # score it (predict.py, serve.py: the same switch)

Before anything counts as written, onnxruntime must give the same greedy answers as PyTorch on the
whole validation split; otherwise export.py fails naming the first difference, and writes nothing.
"""
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse

from cli import Parser, add_run_args, fail, pick_run
from errors import UserError
from onnxexport import export


def main(argv=None):
    cli.catch_ctrl_c()
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    add_run_args(p, "export")
    p.add_argument("--int8", action="store_true", help="also write the int8-quantised graphs (model.int8.onnx, step.int8.onnx)")
    a = p.parse_args(argv)
    try:
        path = pick_run(a.run, a.latest, a.models_dir, "export")
        info = export(path, a.int8)
        print("written: " + ", ".join(f"{path}/{n} ({s / 1024:.0f} KiB)" for n, s in info["sizes"].items())
              + ", codec.json, export.json")
    except UserError as e:
        fail(str(e))
    except OSError as e:
        fail(f"could not write {e.filename or 'the export'} ({e.strerror or e}); nothing was left half-written")
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
