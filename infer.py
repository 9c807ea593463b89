"""Greedy answers of a model to problems in a task's form: the inference primitive behind
training's validation, scoring, predict.py, serve.py and the export's parity check; and ask(),
the answers to what people type, as predict.py and serve.py show them."""
import torch

import layouts
from codec import UnknownSymbols
from errors import BadInput


def answers(model, codec, inputs: list[str], max_new: int, device="cpu", batch_size=500) -> tuple[list[str], list[float]]:
    """Greedy answers (text up to <eos>) to inputs in the task's form, and the probability of each
    (the product of its tokens' probabilities, <eos> included). Batches are formed from inputs
    sorted by length to avoid padding work; answers come back in the order given."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    texts, probs = [""] * len(inputs), [0.0] * len(inputs)
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        prompt, prompt_len = codec.prompts([inputs[i] for i in idx])
        tokens, p = layouts.generate(model, prompt.to(device), prompt_len.to(device), max_new)
        tokens, p = tokens.cpu().tolist(), p.double().prod(1).cpu().tolist()
        for row, i in enumerate(idx):
            texts[i], probs[i] = codec.decode(tokens[row]), p[row]
    model.train(was_training)
    return texts, probs


def max_new_tokens(task) -> int:
    """The decoding cap for a typed problem: the task's longest possible answer plus 8 tokens
    (room to be wrong)."""
    return task.max_target_len() + 8


def predict(model, codec, examples, task, device="cpu") -> list[str]:
    """Greedy answers to a set of examples (a split, or a share of one), decoded up to the set's
    longest answer plus 8 tokens: no problem is told its own answer's length, and a validation of
    short problems does not decode as long as the task's longest OOD answer (1000 tokens for
    duplicate_string) when an untrained model never writes <eos>."""
    cap = max((len(codec.encode(e.target)) for e in examples), default=0) + 8
    return answers(model, codec, [e.input for e in examples], cap, device)[0]


def correct(task, output: str, target: str) -> bool:
    """Exact match of the scored part (the result after a scratch pad; for most formats all of it)."""
    return task.scored(output) == task.scored(target)


def exact_match(model, codec, examples, task, device="cpu") -> float:
    preds = predict(model, codec, examples, task, device)
    return sum(correct(task, p, e.target) for p, e in zip(preds, examples)) / len(examples)


def ask(run, texts: list[str], device="cpu") -> list[dict]:
    """Answers of a run (runs.Run) to typed problems, in order. Each is {"input", "problem" (the
    task's form), "output" (as the model wrote it), "answer" (as people read it), "probability",
    "warnings", and any of the task's `extras` (arith: "latex", and "work" for a scratch pad)} or,
    for one the run cannot take, {"input", "error"}."""
    out, todo = [], []
    for text in texts:
        problem = run.task.normalize(text)
        try:
            run.codec.encode(problem)
            warnings = run.task.check(problem)
        except (UnknownSymbols, BadInput) as e:
            out.append({"input": text, "error": str(e)})
            continue
        todo.append(len(out))
        out.append({"input": text, "problem": problem, "warnings": warnings})
    if todo:
        with torch.inference_mode():
            outputs, probs = answers(run.model, run.codec, [out[i]["problem"] for i in todo], max_new_tokens(run.task), device)
        for i, output, p in zip(todo, outputs, probs):
            out[i].update({"output": output, **run.task.present(out[i]["problem"], output), "probability": p})
    return out
