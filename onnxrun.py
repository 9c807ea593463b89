"""Exported models (export.py) run by onnxruntime behind the same tensor contract as the torch
models (layouts.py), so layouts' greedy decoding, evaluate.py, predict.py and serve.py use them
unchanged.

An exported graph is the model's forward: decoder `tokens -> logits`, encdec `(src, tgt) ->
logits`, slots `(tokens, slot_pos) -> logits`, with dynamic batch and length. There is no cache in
the graph: decoding re-runs the sequence so far at each step, writing each row's new token right
after its last one (so padding never sits between a prompt and its answer). Our sequences are a few
dozen tokens, where that costs less than a cache's bookkeeping.
"""
import os
from types import SimpleNamespace

import numpy as np
import torch

from codec import PAD

RUNTIMES = ("torch", "onnx", "int8")
FILES = {"onnx": "model.onnx", "int8": "model.int8.onnx"}


def add_runtime_argument(parser):
    """The --runtime switch of evaluate.py, predict.py and serve.py."""
    parser.add_argument("--runtime", default="torch", choices=RUNTIMES,
                        help="torch, or the run's export run by onnxruntime: onnx, int8 (python export.py first)")


class OnnxError(Exception):
    """An export that is missing or unreadable; one line."""


def session(path: str, threads: int | None = None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for an unreadable model
        raise OnnxError(f"{path} is not a usable ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None


class OnnxModel(torch.nn.Module):
    """An exported model behind the tensor contract: forward as the graph, step by re-running."""

    def __init__(self, path: str, layout: str, cfg: dict, threads: int | None = None):
        super().__init__()
        self.path, self.layout, self.cfg = path, layout, SimpleNamespace(**cfg)
        self.sess = session(path, threads)
        self.names = [i.name for i in self.sess.get_inputs()]

    def _run(self, *tensors):
        feed = {n: t.detach().cpu().numpy().astype(np.int64) for n, t in zip(self.names, tensors)}
        return torch.from_numpy(self.sess.run(None, feed)[0])

    def forward(self, *tensors):
        return self._run(*tensors)

    def encode(self, src):  # encdec: the decoding state is the source and the target so far
        return {"src": src, "tgt": None}

    def step(self, tokens, state=None):
        if self.layout == "encdec":
            state["tgt"] = tokens if state["tgt"] is None else torch.cat((state["tgt"], tokens), 1)
            return self._run(state["src"], state["tgt"])[:, -tokens.shape[1]:], state
        if state is None:  # decoder: right-padded prompts
            return self._run(tokens), (tokens, (tokens != PAD).sum(1))
        seq, length = state
        rows = torch.arange(seq.shape[0])
        seq = torch.cat((seq, torch.full_like(seq[:, :1], PAD)), 1)
        seq[rows, length] = tokens[:, 0]
        length = length + 1
        return self._run(seq)[rows, length - 1][:, None], (seq, length)


def load(run_path: str, runtime: str, layout: str, cfg: dict, threads: int | None = None) -> OnnxModel:
    path = os.path.join(run_path, FILES[runtime])
    if not os.path.isfile(path):
        what = "python export.py " + run_path + (" --int8" if runtime == "int8" else "")
        raise OnnxError(f"{run_path} has no {FILES[runtime]}; export it first with: {what}")
    return OnnxModel(path, layout, cfg, threads)
