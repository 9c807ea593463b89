"""Greedy answers of a model to problems in a task's form: the inference primitive behind
training's validation, evaluate.py, predict.py, serve.py and export.py's parity check."""
import layouts


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
    """The decoding cap: the task's longest possible answer plus 8 tokens (room to be wrong)."""
    return task.max_target_len() + 8


def predict(model, codec, examples, task, device="cpu") -> list[str]:
    return answers(model, codec, [e.input for e in examples], max_new_tokens(task), device)[0]


def correct(task, output: str, target: str) -> bool:
    """Exact match of the scored part (the result after a scratch pad; for most formats all of it)."""
    return task.scored(output) == task.scored(target)


def exact_match(model, codec, examples, task, device="cpu") -> float:
    preds = predict(model, codec, examples, task, device)
    return sum(correct(task, p, e.target) for p, e in zip(preds, examples)) / len(examples)
