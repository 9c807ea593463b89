"""Carry a run out of Python and PyTorch: ONNX export with a parity check, and int8 quantisation.

    python export.py models/<run>             # model.onnx, codec.json, export.json in the run folder
    python export.py models/<run> --int8      # also model.int8.onnx
    python evaluate.py models/<run> --runtime onnx      # score it (predict.py, serve.py: the same switch)

The graph is the model's forward (layouts.py): decoder `tokens -> logits`, encdec `(src, tgt) ->
logits`, slots `(tokens, slot_pos) -> logits`, with dynamic batch and length; token ids are those of
codec.json (specials 0-4, then the task's symbols), export.json says which layout and inputs. A
program outside Python decodes greedily: encode `<bos> input <sep>`, run, take the most likely next
token, append, until `<eos>` (onnxrun.py does exactly that for the tools here).

Before anything counts as written, onnxruntime must give the same greedy answers as PyTorch on the
whole validation split; otherwise export.py fails naming the first difference. Files are written
under temporary names and renamed at the end, so a failed export leaves nothing that looks finished.
--int8 quantises the weights of the graph's matrix products to int8, one scale per output channel,
with onnxruntime's dynamic quantisation (activations are quantised on the fly): it works on the graph
already checked, with the runtime that runs it, where torch's quantisation would make a second model
to export. The embedding lookups stay float: quantising them too cost gpt 9.3 points on the bracket
OOD lengths (75.95% -> 66.65%), per-channel scales on the matrix products alone 2.45 (73.50%). Its
validation exact match is printed beside PyTorch's.
"""
import os
import signal
import sys

if __name__ == "__main__":  # Ctrl-C while the imports below load: exit 130 without a traceback
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # no exception into a C++ import

import argparse
import contextlib
import logging
import time
import warnings

import torch

import dataset as D
import evaluate
import layouts
import onnxrun
from runs import Parser, RunError, TMP, fail, load_run, write_json


def split_of(run, name):
    return D.load_split(D.prepare(D.DataSpec(**run.config["data"]), run.config.get("data_dir", "data")), name)


def example_inputs(run, n=4):
    """Inputs of the model's forward for a few validation problems, and the dynamic dimensions."""
    exs = split_of(run, "val")[:n]
    b = run.codec.batch(exs)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    if run.model.layout == "decoder":
        x, _ = layouts.decoder_sequences(b)
        return (x,), {"tokens": {0: batch, 1: length}}, ["tokens"]
    if run.model.layout == "encdec":
        tgt = b.answer
        return (b.prompt, tgt), {"src": {0: batch, 1: length}, "tgt": {0: batch, 1: torch.export.Dim("answer")}}, ["src", "tgt"]
    x, slot_pos = layouts.slot_inputs(b.prompt, b.prompt_len, run.model.cfg.n_slots)
    return (x, slot_pos), {"tokens": {0: batch, 1: length}, "slot_pos": {0: batch}}, ["tokens", "slot_pos"]


@contextlib.contextmanager
def quiet():
    """torch's exporter and onnxruntime's quantiser log notes that concern nothing here
    (torchvision's operators skipped, a boolean mask left unquantised)."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def to_onnx(run, path):
    args, dims, names = example_inputs(run)
    with quiet():
        torch.onnx.export(run.model.eval(), args, path, input_names=names, output_names=["logits"],
                          dynamic_shapes=tuple(dims[n] for n in names), dynamo=True, optimize=True,
                          external_data=False, verbose=False)
    return names


def parity(run, model, exs) -> tuple[int, int, str | None]:
    """(problems, agreeing answers, the first difference) between PyTorch and model on examples."""
    inputs = [e.input for e in exs]
    cap = evaluate.max_new_tokens(run.task)
    ours, _ = evaluate.answers(run.model, run.codec, inputs, cap)
    theirs, _ = evaluate.answers(model, run.codec, inputs, cap)
    same = sum(a == b for a, b in zip(ours, theirs))
    first = next((f"{x!r}: PyTorch {a!r}, onnxruntime {b!r}" for x, a, b in zip(inputs, ours, theirs) if a != b), None)
    return len(inputs), same, first


def export(path, int8=False, log=print) -> dict:
    run = load_run(path, "cpu")
    cfg = vars(run.model.cfg)
    tmp = {name: os.path.join(path, f"{TMP}{os.getpid()}-{name}") for name in ("model.onnx", "model.int8.onnx")}
    try:
        t = time.time()
        names = to_onnx(run, tmp["model.onnx"])
        val = split_of(run, "val")
        n, same, first = parity(run, onnxrun.OnnxModel(tmp["model.onnx"], run.model.layout, cfg), val)
        if first is not None:
            raise RunError(f"the ONNX export disagrees with PyTorch on {n - same} of {n} validation problems, first {first}; "
                           "nothing was written")
        info = {"layout": run.model.layout, "inputs": names, "outputs": ["logits"], "n_slots": cfg.get("n_slots"),
                "specials": {"pad": 0, "bos": 1, "sep": 2, "eos": 3, "mask": 4}, "max_new_tokens": evaluate.max_new_tokens(run.task),
                "opset": None, "parity": {"split": "val", "problems": n, "same_answers": same},
                "torch": torch.__version__, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        log(f"model.onnx: the same greedy answers as PyTorch on all {n} validation problems ({time.time() - t:.1f}s)")
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            with quiet():
                quantize_dynamic(tmp["model.onnx"], tmp["model.int8.onnx"], weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul"])
            q = onnxrun.OnnxModel(tmp["model.int8.onnx"], run.model.layout, cfg)
            n, same, _ = parity(run, q, val)
            em_torch = evaluate.exact_match(run.model, run.codec, val, run.task)
            em_int8 = evaluate.exact_match(q, run.codec, val, run.task)
            info["int8"] = {"val_exact_match": em_int8, "torch_val_exact_match": em_torch, "same_answers": same}
            log(f"model.int8.onnx: validation exact match {em_int8:.2%} (PyTorch {em_torch:.2%}); "
                f"the same answers on {same} of {n}")
        import onnx
        info["opset"] = next((o.version for o in onnx.load(tmp["model.onnx"], load_external_data=False).opset_import
                              if o.domain in ("", "ai.onnx")), None)
        write_json(os.path.join(path, "codec.json"), run.codec.to_json())
        write_json(os.path.join(path, "export.json"), info)
        for name, t in tmp.items():  # last: only a checked export gets its real name
            if os.path.exists(t):
                os.replace(t, os.path.join(path, name))
        sizes = {name: os.path.getsize(os.path.join(path, name)) for name in tmp if os.path.exists(os.path.join(path, name))}
        return {**info, "sizes": sizes}
    finally:
        for t in tmp.values():
            if os.path.exists(t):
                os.unlink(t)


def main(argv=None):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n", 2)[2])
    p.add_argument("run", help="a run folder, e.g. models/gru_bracket_20261122_101500_1min")
    p.add_argument("--int8", action="store_true", help="also write an int8-quantised model.int8.onnx")
    a = p.parse_args(argv)
    try:
        info = export(a.run.rstrip("/"), a.int8)
        print("written: " + ", ".join(f"{a.run.rstrip('/')}/{n} ({s / 1024:.0f} KiB)" for n, s in info["sizes"].items())
              + ", codec.json, export.json")
    except (RunError, D.DataError, onnxrun.OnnxError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"could not write {e.filename or 'the export'} ({e.strerror or e}); nothing was left half-written")
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
