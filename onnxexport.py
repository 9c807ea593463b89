"""ONNX export of a run with a parity check, and int8 quantisation: how a run is carried out of
Python and PyTorch (export.py is its command line; onnxrun.py runs what it writes).

The graphs (onnxrun.py has the contract): slots `(tokens, slot_pos) -> logits`, one pass; decoder
and encdec decode with a state, as the torch models do: model.onnx reads the prompt (decoder
`tokens -> logits, state...`; encdec `(src, tokens) -> logits, state...` with tokens the first
<bos>) and step.onnx writes each next token `(tokens, past_<state>...) -> logits, state...`. The
state is the model's own (gpt's and tra's keys and values, the RNNs' hidden state): no step re-reads
the sequence. Every input and output dimension that varies is symbolic and named ("batch",
"length", "past", "past + 1"), so onnxruntime takes any batch and length without a warning. The
two graphs share one copy of the weights, an external-data file beside them (weights.data), rather
than each holding its own: half the bytes to ship, and onnxruntime in any language finds the file
by itself; folding both into one graph with an optional state would put a branch (an If node)
around the whole model. Token ids are those of codec.json (specials 0-4, then
the task's symbols); export.json names the layout, the graphs' inputs and outputs and the state. A
program outside Python decodes greedily: encode `<bos> input <sep>`, run model.onnx, take the most
likely next token, run step.onnx with it and the state, until `<eos>` (onnxrun.py and layouts.py do
exactly that for the tools here; examples/node/decode.js in JavaScript).

Before anything counts as written, onnxruntime must give the same greedy answers as PyTorch on the
whole validation split; otherwise export.py fails naming the first difference. Files are written
in a hidden folder in the run folder and moved beside the run's files at the end, so a failed
export leaves nothing that looks finished.
--int8 stores the weights of every matrix product as int8 (onnxruntime's MatMulNBits, 8 bits, one
scale per block of 32 input rows) and keeps the activations float. It works on the graphs already
checked, with the runtime that runs them, where torch's quantisation would make a second model to
export. Weight-only int8 keeps the answers of the float graphs far better than dynamic
quantisation of the activations too (docs/export.md has the measurement). Embedding lookups and
the recurrent cells (GRU and LSTM nodes, not matrix products) stay float, so gru's and lstm's
int8 graphs differ from the float ones in the output head alone. Its
validation exact match is printed beside PyTorch's.
"""
import contextlib
import hashlib
import logging
import os
import shutil
import time
import warnings

import torch

import archs
import files
import infer
import layouts
import onnxrun
from codec import BOS, EOS, MASK, PAD, SEP
from errors import OnnxError
from files import write_json
from runs import load_run


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


def examples(run, problems, width=None, steps=2) -> tuple[list[tuple], list[str]]:
    """Example inputs of each graph for these problems, their prompts right-padded to width columns:
    model.onnx's, and step.onnx's (a token and the state after steps tokens, two or more so that
    the state's length is not traced as a constant 1); and the state's names."""
    m = run.model
    b = run.codec.batch(problems)
    prompt = torch.nn.functional.pad(b.prompt, (0, (width or 0) - b.prompt.shape[1]), value=PAD) if width else b.prompt
    if m.layout == "slots":
        return [layouts.slot_inputs(prompt, b.prompt_len, m.cfg.n_slots)], []
    first = (prompt,) if m.layout == "decoder" else (prompt, torch.full_like(prompt[:, :1], BOS))
    with torch.no_grad():
        logits, state = m.step(prompt) if m.layout == "decoder" else m.step(first[1], m.encode(prompt))
        for _ in range(steps - 1):
            tokens = logits[:, -1:].argmax(-1)
            logits, state = m.step(tokens, state)
    return [first, (logits[:, -1:].argmax(-1), *state.values())], list(state)


SMALL = 64  # bytes: initializers below this (shapes, scalars) stay inside the graphs


def graphs(run, n=4) -> tuple[list[dict], list[str]]:
    """Each graph to export: file, module, example inputs (a few validation problems), dynamic
    shapes, input and output names, and a probe: other inputs, each dimension but the model's own
    sizes different (one problem fewer, one more <pad> column, one more step), to see which output
    dimensions vary; and the state's names."""
    # traced for inference: a mask computed from a parameter (gpt's place bias) must not need grad
    m = run.model.eval().requires_grad_(False)
    val = run.split("val")
    args, names = examples(run, val[:n])
    probe, _ = examples(run, val[:n - 1], width=args[0][0].shape[1] + 1, steps=3)
    dim = {name: torch.export.Dim(name) for name in ("batch", "length", "past")}
    row, rows = {0: dim["batch"]}, {0: dim["batch"], 1: dim["length"]}
    if m.layout == "slots":
        return [{"file": "model.onnx", "module": Graph(m, "model"), "args": args[0], "probe": probe[0], "shapes": (rows, row),
                 "inputs": ["tokens", "slot_pos"], "outputs": ["logits"]}], []
    grows = archs.ARCHS[run.config["arch"]].EXPORT["state_grows"]  # state tensor -> the axis that grows
    step_shapes = (row,) + tuple({0: dim["batch"], **({grows[k][0]: dim[grows[k][1]]} if k in grows else {})} for k in names)
    return [{"file": "model.onnx", "module": Graph(m, "model"), "args": args[0], "probe": probe[0],
             "shapes": (rows,) if m.layout == "decoder" else (rows, row),
             "inputs": ["tokens"] if m.layout == "decoder" else ["src", "tokens"],
             "outputs": ["logits", *names]},
            {"file": "step.onnx", "module": Graph(m, "step", names), "args": args[1], "probe": probe[1], "shapes": step_shapes,
             "inputs": ["tokens", *[f"past_{k}" for k in names]], "outputs": ["logits", *names]}], names


def finish(path, g):
    """Make the exported graph at path what export.json promises. Every output dimension that
    varies with the inputs becomes symbolic, named after the input dimension it follows ("length",
    "past + 1"): torch's exporter leaves some as the example's size (the recurrent models' logits),
    and onnxruntime then warns on every call of another size. Which dimensions vary is seen by
    running the module on the example and on the probe; one that follows no input dimension is
    named <output>_<axis>. The shapes the exporter noted for intermediate values go too (they are
    optional, and hold the same example sizes, which onnxruntime checks the outputs against), and
    so do its notes on every node (the traced Python, its stack trace with this machine's paths):
    they were most of a graph's bytes."""
    import onnx
    proto = onnx.load(path)
    with torch.no_grad():
        outs = [o if isinstance(o, tuple) else (o,) for o in (g["module"](*args) for args in (g["args"], g["probe"]))]
    sizes = {}  # input dimension name -> (size in the example, size in the probe)
    for inp, a, b in zip(proto.graph.input, g["args"], g["probe"]):
        for axis, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.dim_param:
                sizes.setdefault(d.dim_param, (a.shape[axis], b.shape[axis]))
    for out, a, b in zip(proto.graph.output, *outs):
        for axis, d in enumerate(out.type.tensor_type.shape.dim):
            if d.dim_param or a.shape[axis] == b.shape[axis]:
                continue
            follows = [(s, a.shape[axis] - x) for s, (x, y) in sizes.items() if a.shape[axis] - x == b.shape[axis] - y]
            s, c = follows[0] if follows else (f"{out.name}_{axis}", 0)
            d.dim_param = s + (f" + {c}" if c > 0 else f" - {-c}" if c < 0 else "")
    graphs = [proto.graph]
    while graphs:  # the graph and the bodies of its loops
        graph = graphs.pop()
        del graph.value_info[:]
        for node in graph.node:
            node.ClearField("metadata_props")
            node.ClearField("doc_string")
            for attr in node.attribute:
                graphs += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
    onnx.save(proto, path)


def share_weights(paths, data):
    """Store the weights of an export's graphs once: every initializer of 64 bytes (SMALL) or more moves
    to one external-data file, data, beside the graphs, each distinct tensor once (model.onnx and
    step.onnx hold the same weights; a tied embedding is one tensor), at offsets aligned to 64
    bytes. Smaller constants (shapes, scalars) stay in the graphs. onnxruntime finds the file next
    to the graph it loads, in Python as in any other language."""
    import onnx
    from onnx.external_data_helper import set_external_data
    protos = [onnx.load(p) for p in paths]
    offsets, blob = {}, bytearray()
    for proto in protos:
        for t in proto.graph.initializer:
            raw = t.raw_data or onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t)).raw_data
            if len(raw) < SMALL:
                continue
            key = hashlib.sha256(raw).digest()
            if key not in offsets:
                blob += bytes(-len(blob) % 64)
                offsets[key] = len(blob)
                blob += raw
            for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                t.ClearField(field)
            t.raw_data = raw
            set_external_data(t, data, offsets[key], len(raw))  # marks the tensor external; its bytes then leave the graph
            t.ClearField("raw_data")
    with open(os.path.join(os.path.dirname(paths[0]), data), "wb") as f:
        f.write(blob)
    for proto, p in zip(protos, paths):
        onnx.save(proto, p)


def quantize(src, dst):
    """int8 weights, float activations: every matrix product with a weight becomes onnxruntime's
    MatMulNBits, 8 bits with one scale per block of 32 input rows (docs/export.md: why not dynamic
    quantisation of the activations)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    with quiet():
        q = MatMulNBitsQuantizer(src, bits=8, block_size=32, is_symmetric=True)
        q.process()
        q.model.save_model_to_file(dst)


def to_onnx(g, path, arch):
    if hasattr(archs.ARCHS[arch], "prepare_export"):  # e.g. rnn.py's: a fresh dispatch cache
        archs.ARCHS[arch].prepare_export()
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
    """Export the run at path; the report of export.json plus each written file's size. Everything is
    written and checked in a hidden folder inside the run folder, then moved beside the run's files."""
    run = load_run(path, "cpu")
    if archs.ARCHS[run.config["arch"]].EXPORT is None:
        raise OnnxError(f"export to ONNX is not available for {run.config['arch']}: its model is a Python loop over the "
                        "tokens (archs/memory.py); evaluate, predict and serve it with the torch runtime")
    cfg = vars(run.model.cfg)
    gs, state = graphs(run)
    tmp = files.tmp_dir(path)

    def at(name):
        return os.path.join(tmp, name)
    try:
        t = time.time()
        for g in gs:
            to_onnx(g, at(g["file"]), run.config["arch"])
            finish(at(g["file"]), g)
        float_graphs = [at(g["file"]) for g in gs]
        int8_files = onnxrun.FILES["int8"][:len(gs)] if int8 else ()
        for src, name in zip(float_graphs, int8_files):
            quantize(src, at(name))  # from the self-contained float graphs, before their weights move out
        share_weights(float_graphs, onnxrun.DATA["onnx"])
        if int8:
            share_weights([at(n) for n in int8_files], onnxrun.DATA["int8"])
        info = {"layout": run.model.layout, "graphs": {g["file"]: {"inputs": g["inputs"], "outputs": g["outputs"]} for g in gs},
                "state": state, "data": {"onnx": onnxrun.DATA["onnx"], **({"int8": onnxrun.DATA["int8"]} if int8 else {})},
                "prompts_of_one_length": archs.ARCHS[run.config["arch"]].EXPORT["prompts_of_one_length"],
                "n_slots": cfg.get("n_slots"), "refine": bool(cfg.get("refine")),
                "specials": {"pad": PAD, "bos": BOS, "sep": SEP, "eos": EOS, "mask": MASK},
                "max_new_tokens": infer.max_new_tokens(run.task), "opset": None, "torch": torch.__version__,
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        val = run.split("val")
        inputs, n = [e.input for e in val], len(val)
        ours, _ = infer.answers(run.model, run.codec, inputs, infer.max_new_tokens(run.task))
        model = onnxrun.OnnxModel(float_graphs, info, cfg)
        same, first, _ = parity(run, model, inputs, ours)
        if first is not None:
            raise OnnxError(f"the ONNX export disagrees with PyTorch on {n - same} of {n} validation problems, first {first}; "
                           "nothing was written")
        info["parity"] = {"split": "val", "problems": n, "same_answers": same}
        log(f"{' and '.join(g['file'] for g in gs)}: the same greedy answers as PyTorch on all {n} validation problems "
            f"({time.time() - t:.1f}s)")
        if int8:
            q = onnxrun.OnnxModel([at(name) for name in int8_files], info, cfg)
            same, _, theirs = parity(run, q, inputs, ours)
            em_torch, em_int8 = (sum(infer.correct(run.task, a, e.target) for a, e in zip(answers, val)) / n for answers in (ours, theirs))
            info["int8"] = {"val_exact_match": em_int8, "torch_val_exact_match": em_torch, "same_answers": same}
            log(f"{' and '.join(int8_files)}: validation exact match {em_int8:.2%} (PyTorch {em_torch:.2%}); "
                f"the same answers on {same} of {n}")
        import onnx
        info["opset"] = next((o.version for o in onnx.load(float_graphs[0], load_external_data=False).opset_import
                              if o.domain in ("", "ai.onnx")), None)
        write_json(at("codec.json"), run.codec.to_json())
        write_json(at("export.json"), info)
        # last: only a checked export gets its real names; the weights before the graphs that read them
        names = sorted(os.listdir(tmp), key=lambda name: (name.endswith(".json"), not name.endswith(".data")))
        for name in names:
            os.replace(at(name), os.path.join(path, name))
        shown = [name for rt in ("onnx", "int8") for name in (*onnxrun.FILES[rt], onnxrun.DATA[rt]) if name in names]
        return {**info, "sizes": {name: os.path.getsize(os.path.join(path, name)) for name in shown}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
