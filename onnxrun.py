"""Exported models (export.py) run by onnxruntime behind the same tensor contract as the torch
models (layouts.py), so layouts' greedy decoding, evaluate.py, predict.py and serve.py use them
unchanged.

An export is one graph, or two where decoding carries a state (export.json lists the names):
  model.onnx  slots:   (tokens, slot_pos) -> logits
              decoder: (tokens) -> (logits, state...)       reads right-padded prompts
              encdec:  (src, tokens) -> (logits, state...)  reads the source and the first target tokens
  step.onnx   (tokens (B, 1), past_<name> for each state tensor) -> (logits, state...)
Every output dimension that varies is symbolic, named after the input dimension it follows
("batch", "length", "past + 1"). The graphs of a runtime share their weights: one external-data
file beside them (weights.data; int8: weights.int8.data) that onnxruntime reads by itself.
The state tensors are the model's own (archs/: gpt's keys/values and positions, the RNNs' hidden
state), batch first; the state a call returns is fed back as past_<name> to the next. A recurrent
model's graph cannot pack its prompts: export.json says "prompts_of_one_length" and rows of each
length are read in a call of their own here. The int8 export has the same graphs, quantised:
model.int8.onnx, step.int8.onnx. Between calls the state stays in numpy: a decoding step is one
onnxruntime call and no PyTorch work.
"""
import json
import os
from types import SimpleNamespace

import numpy as np
import torch

from codec import PAD
from errors import OnnxError

RUNTIMES = ("torch", "onnx", "int8")
FILES = {"onnx": ("model.onnx", "step.onnx"), "int8": ("model.int8.onnx", "step.int8.onnx")}
DATA = {"onnx": "weights.data", "int8": "weights.int8.data"}  # the weights of each pair of graphs, stored once


def add_runtime_argument(parser):
    """The --runtime switch of evaluate.py, predict.py and serve.py."""
    parser.add_argument("--runtime", default="torch", choices=RUNTIMES,
                        help="torch, or the run's export run by onnxruntime: onnx, int8 (python export.py first)")


def session(path: str, threads: int | None = None):
    try:
        import onnxruntime as ort
    except ImportError:  # the image's serve target leaves it out
        raise OnnxError("the onnx runtimes need the onnxruntime package, which this installation lacks "
                        "(pip install -r requirements.txt, or the image's default target)") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # One thread and no spinning: these graphs are too small for onnxruntime's threads to pay, and
    # its threads spinning between calls took the cores from PyTorch's own work in the same process
    # (bracket 1min, runtimes taking turns: torch's p50 latency 15-80 ms instead of 1.2-3 ms).
    opts.intra_op_num_threads = threads or 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for an unreadable model
        raise OnnxError(f"{path} is not a usable ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None


class Graph:
    """One onnxruntime session, fed by input name (inputs it does not take are left out)."""

    def __init__(self, path, threads=None):
        self.sess = session(path, threads)
        self.inputs = [i.name for i in self.sess.get_inputs()]

    def __call__(self, **feed):
        return self.sess.run(None, {n: feed[n] for n in self.inputs})


def numpy(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t


class OnnxModel(torch.nn.Module):
    """An export behind the tensor contract: forward (slots), encode and step (decoder, encdec)."""

    def __init__(self, paths, info: dict, cfg: dict, threads: int | None = None):
        super().__init__()
        self.layout, self.cfg, self.info = info["layout"], SimpleNamespace(**cfg), info
        self.first = Graph(paths[0], threads)
        self.next = Graph(paths[1], threads) if self.layout != "slots" else None
        self.state_names = info.get("state", [])
        self.past_names = [f"past_{k}" for k in self.state_names]

    def forward(self, tokens, slot_pos):  # slots
        return torch.from_numpy(self.first(tokens=numpy(tokens), slot_pos=numpy(slot_pos))[0])

    def encode(self, src):  # encdec: model.onnx reads the source together with the first target tokens
        return {"src": numpy(src)}

    def _out(self, outs):  # numpy logits: layouts.greedy decodes them without PyTorch's per-call overhead
        return outs[0], dict(zip(self.state_names, outs[1:]))

    def step(self, tokens, state=None):
        tokens = numpy(tokens)
        if self.layout == "encdec" and "src" in state:
            return self._out(self.first(src=state["src"], tokens=tokens))
        if state is None:
            return self._out(self._read(tokens))
        return self._out(self.next(tokens=tokens, **dict(zip(self.past_names, state.values()))))

    def _read(self, tokens):
        """model.onnx on right-padded prompts; for a recurrent model one call per prompt length."""
        lengths = (tokens != PAD).sum(1)
        if not self.info.get("prompts_of_one_length") or (lengths == tokens.shape[1]).all():
            return self.first(tokens=tokens)
        outs = None
        for n in np.unique(lengths):
            rows = np.flatnonzero(lengths == n)
            part = self.first(tokens=np.ascontiguousarray(tokens[rows, :n]))
            if outs is None:
                outs = [np.zeros((len(tokens), tokens.shape[1], *part[0].shape[2:]), part[0].dtype)] + \
                       [np.zeros((len(tokens), *p.shape[1:]), p.dtype) for p in part[1:]]
            outs[0][rows, :n] = part[0]
            for o, p in zip(outs[1:], part[1:]):
                o[rows] = p
        return outs


def load(run_path: str, runtime: str, layout: str, cfg: dict, threads: int | None = None) -> OnnxModel:
    names = FILES[runtime][:1] if layout == "slots" else FILES[runtime]
    paths = [os.path.join(run_path, n) for n in names]
    what = "python export.py " + run_path + (" --int8" if runtime == "int8" else "")
    missing = [n for n, p in zip(names, paths) if not os.path.isfile(p)]
    if missing:
        raise OnnxError(f"{run_path} has no {missing[0]}; export it first with: {what}")
    try:
        with open(os.path.join(run_path, "export.json")) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise OnnxError(f"{run_path}/export.json is missing or corrupt ({e}); export again with: {what}") from None
    if not isinstance(info, dict) or info.get("layout") != layout or (layout != "slots" and not isinstance(info.get("state"), list)):
        raise OnnxError(f"{run_path}/export.json does not describe this run's export; export again with: {what}")
    data = (info.get("data") or {}).get(runtime)  # exports by an older export.py hold their weights in each graph
    if data and not os.path.isfile(os.path.join(run_path, data)):
        raise OnnxError(f"{run_path} has no {data} (the weights of its graphs); export again with: {what}")
    return OnnxModel(paths, info, cfg, threads)
