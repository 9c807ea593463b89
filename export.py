"""Carry a run out of Python and PyTorch: ONNX export with a parity check, and int8 quantisation.

    python export.py models/<run>             # model.onnx (+ step.onnx), codec.json, export.json in the run folder
    python export.py models/<run> --int8      # also model.int8.onnx (+ step.int8.onnx)
    python evaluate.py models/<run> --runtime onnx      # score it (predict.py, serve.py: the same switch)

The graphs (onnxrun.py has the contract): slots `(tokens, slot_pos) -> logits`, one pass; decoder
and encdec decode with a state, as the torch models do: model.onnx reads the prompt (decoder
`tokens -> logits, state...`; encdec `(src, tokens) -> logits, state...` with tokens the first
<bos>) and step.onnx writes each next token `(tokens, past_<state>...) -> logits, state...`, with
dynamic batch and lengths. The state is the model's own (gpt's and tra's keys and values, the RNNs'
hidden state): no step re-reads the sequence. Token ids are those of codec.json (specials 0-4, then
the task's symbols); export.json names the layout, the graphs' inputs and outputs and the state. A
program outside Python decodes greedily: encode `<bos> input <sep>`, run model.onnx, take the most
likely next token, run step.onnx with it and the state, until `<eos>` (onnxrun.py and layouts.py do
exactly that for the tools here).

Before anything counts as written, onnxruntime must give the same greedy answers as PyTorch on the
whole validation split; otherwise export.py fails naming the first difference. Files are written
under temporary names and renamed at the end, so a failed export leaves nothing that looks finished.
--int8 stores the weights of every matrix product as int8 (onnxruntime's MatMulNBits, 8 bits, one
scale per block of 32 input rows) and keeps the activations float. It works on the graphs already
checked, with the runtime that runs them, where torch's quantisation would make a second model to
export. Weight-only int8 keeps the answers of the float graphs far better than dynamic
quantisation of the activations too (docs/export.md has the measurement). Embedding lookups and the recurrent cells (GRU and LSTM nodes, not matrix products) stay
float, so gru's and lstm's int8 graphs differ from the float ones in the output head alone. Its
validation exact match is printed beside PyTorch's.
"""
import os
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import contextlib
import logging
import time
import warnings

import torch

import dataset as D
import infer
import layouts
import onnxrun
from codec import BOS, EOS, MASK, PAD, SEP
from cli import Parser, UserError, add_run_args, fail, pick_run
from files import TMP, write_json
from runs import RunError, load_run


def split_of(run, name):
    return D.load_split(D.prepare(D.DataSpec(**run.config["data"]), run.config.get("data_dir", "data")), name)


class Graph(torch.nn.Module):
    """A model's decoding as a function of tensors only, as torch.onnx.export takes it: "model" the
    first call (slots: the forward; decoder: read prompts; encdec: read the source and the first
    target tokens), "step" each next token; both return the logits and then the state's tensors."""

    def __init__(self, model, which, state_names=()):
        super().__init__()
        self.model, self.which, self.state_names = model, which, list(state_names)

    def forward(self, *tensors):
        m = self.model
        if m.layout == "slots":
            return m(*tensors)
        if self.which == "step":
            logits, state = m.step(tensors[0], dict(zip(self.state_names, tensors[1:])))
        elif m.layout == "decoder":
            logits, state = m.step(tensors[0])
        else:
            logits, state = m.step(tensors[1], m.encode(tensors[0]))
        return (logits, *state.values())


# The dimension of a state tensor (batch first) that grows: keys, values, positions and digit
# places with the tokens so far, the encoder's keys/values, validity and digit places with the source.
GROWS = {"k": (3, "past"), "v": (3, "past"), "pos": (1, "past"), "valid": (1, "past"), "place": (1, "past"),
         "mem_k": (3, "length"), "mem_v": (3, "length"), "mem_valid": (1, "length"), "mem_place": (1, "length")}


def graphs(run, n=4) -> tuple[list[dict], list[str]]:
    """Each graph to export: file, module, example inputs (a few validation problems), dynamic
    shapes, input and output names; and the state's names."""
    m = run.model.eval().requires_grad_(False)  # traced for inference: a mask computed from a parameter (gpt's place bias) must not need grad
    b = run.codec.batch(split_of(run, "val")[:n])
    dim = {name: torch.export.Dim(name) for name in ("batch", "length", "past")}
    row = {0: dim["batch"]}
    if m.layout == "slots":
        x, slot_pos = layouts.slot_inputs(b.prompt, b.prompt_len, m.cfg.n_slots)
        return [{"file": "model.onnx", "module": Graph(m, "model"), "args": (x, slot_pos),
                 "shapes": ({0: dim["batch"], 1: dim["length"]}, row), "inputs": ["tokens", "slot_pos"], "outputs": ["logits"]}], []
    if m.layout == "decoder":
        args, shapes, inputs = (b.prompt,), ({0: dim["batch"], 1: dim["length"]},), ["tokens"]
    else:
        args, shapes, inputs = (b.prompt, torch.full_like(b.prompt[:, :1], BOS)), ({0: dim["batch"], 1: dim["length"]}, row), ["src", "tokens"]
    with torch.no_grad():
        logits, state = m.step(*args) if m.layout == "decoder" else m.step(args[1], m.encode(args[0]))
        names, tokens = list(state), logits[:, -1:].argmax(-1)
        state = m.step(tokens, state)[1]  # two tokens long, so that its length is not traced as a constant 1
    step_shapes = (row,) + tuple({0: dim["batch"], **({GROWS[k][0]: dim[GROWS[k][1]]} if k in GROWS else {})} for k in names)
    return [{"file": "model.onnx", "module": Graph(m, "model"), "args": args, "shapes": shapes, "inputs": inputs,
             "outputs": ["logits", *names]},
            {"file": "step.onnx", "module": Graph(m, "step", names), "args": (tokens, *state.values()), "shapes": step_shapes,
             "inputs": ["tokens", *[f"past_{k}" for k in names]], "outputs": ["logits", *names]}], names


def quantize(src, dst):
    """int8 weights, float activations: every matrix product with a weight becomes onnxruntime's
    MatMulNBits, 8 bits with one scale per block of 32 input rows (docs/export.md: why not dynamic
    quantisation of the activations)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    with quiet():
        q = MatMulNBitsQuantizer(src, bits=8, block_size=32, is_symmetric=True)
        q.process()
        q.model.save_model_to_file(dst)


def to_onnx(g, path):
    # torch's exporter lends aten.gru/lstm a loop that keeps the sequence length dynamic, only while it
    # exports; the operators' dispatch cache outlives that, so a second export in one process would
    # unroll the recurrence over the example's length (torch 2.13). A fresh cache each time:
    for op in (torch.ops.aten.gru.input, torch.ops.aten.lstm.input):
        op._dispatch_cache.clear()
    with quiet():
        torch.onnx.export(g["module"], g["args"], path, input_names=g["inputs"], output_names=g["outputs"],
                          dynamic_shapes={"tensors": g["shapes"]}, dynamo=True, optimize=True, external_data=False, verbose=False)


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


def parity(run, model, inputs, ours) -> tuple[int, str | None, list[str]]:
    """(agreeing answers, the first difference, model's answers) between PyTorch's answers ours to
    inputs and model's."""
    theirs, _ = infer.answers(model, run.codec, inputs, infer.max_new_tokens(run.task))
    same = sum(a == b for a, b in zip(ours, theirs))
    first = next((f"{x!r}: PyTorch {a!r}, onnxruntime {b!r}" for x, a, b in zip(inputs, ours, theirs) if a != b), None)
    return same, first, theirs


def export(path, int8=False, log=print) -> dict:
    run = load_run(path, "cpu")
    cfg = vars(run.model.cfg)
    gs, state = graphs(run)
    int8_files = onnxrun.FILES["int8"][:len(gs)] if int8 else ()
    names = [g["file"] for g in gs] + list(int8_files)
    tmp = {name: os.path.join(path, f"{TMP}{os.getpid()}-{name}") for name in names}
    try:
        t = time.time()
        for g in gs:
            to_onnx(g, tmp[g["file"]])
        info = {"layout": run.model.layout, "graphs": {g["file"]: {"inputs": g["inputs"], "outputs": g["outputs"]} for g in gs},
                "state": state, "prompts_of_one_length": bool(getattr(run.model, "exported_prompts_of_one_length", False)),
                "n_slots": cfg.get("n_slots"), "specials": {"pad": PAD, "bos": BOS, "sep": SEP, "eos": EOS, "mask": MASK},
                "max_new_tokens": infer.max_new_tokens(run.task), "opset": None, "torch": torch.__version__,
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        val = split_of(run, "val")
        inputs, n = [e.input for e in val], len(val)
        ours, _ = infer.answers(run.model, run.codec, inputs, infer.max_new_tokens(run.task))
        model = onnxrun.OnnxModel([tmp[g["file"]] for g in gs], info, cfg)
        same, first, _ = parity(run, model, inputs, ours)
        if first is not None:
            raise RunError(f"the ONNX export disagrees with PyTorch on {n - same} of {n} validation problems, first {first}; "
                           "nothing was written")
        info["parity"] = {"split": "val", "problems": n, "same_answers": same}
        log(f"{' and '.join(g['file'] for g in gs)}: the same greedy answers as PyTorch on all {n} validation problems "
            f"({time.time() - t:.1f}s)")
        if int8:
            for g, name in zip(gs, int8_files):
                quantize(tmp[g["file"]], tmp[name])
            q = onnxrun.OnnxModel([tmp[name] for name in int8_files], info, cfg)
            same, _, theirs = parity(run, q, inputs, ours)
            em_torch, em_int8 = (sum(infer.correct(run.task, a, e.target) for a, e in zip(answers, val)) / n for answers in (ours, theirs))
            info["int8"] = {"val_exact_match": em_int8, "torch_val_exact_match": em_torch, "same_answers": same}
            log(f"{' and '.join(int8_files)}: validation exact match {em_int8:.2%} (PyTorch {em_torch:.2%}); "
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
    except (UserError, onnxrun.OnnxError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"could not write {e.filename or 'the export'} ({e.strerror or e}); nothing was left half-written")
    except KeyboardInterrupt:
        fail("interrupted; nothing was written", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
