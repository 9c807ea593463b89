"""How each family of architecture sees a problem as tensors, learns from the answer alone, and
decodes greedily. Models (archs/) are tensor functions that know nothing of problems or codecs;
each names its layout in a `layout` attribute.

decoder  (gru, lstm, gpt) one stream  <bos> input <sep> target <eos>; the loss is taken where the
         next token belongs to the answer.
             model(tokens) -> logits (B, T, V)
             model.step(tokens, state=None) -> (logits, state); with no state the tokens are
             right-padded prompts and the state continues after each row's last real token.
             (An exported model's step returns numpy logits: greedy decoding takes either.)
encdec   (tra) the encoder reads <bos> input <sep>; the decoder writes target <eos> after a <bos>.
             model(src, tgt) -> logits (B, Tt, V); model.encode(src) -> state;
             model.step(tokens, state) -> (logits, state)
slots    (ber) <bos> input <sep> followed by n_slots <mask> output slots, all filled in one
         bidirectional pass (with cfg.refine: Mask-Predict, the surest slot per pass).
             model(tokens, slot_pos) -> logits (B, n_slots, V)

Decoding is greedy and unconstrained: up to max_new tokens, stopping at <eos>, with no knowledge
of the answer. It returns the tokens (B, <=max_new), <pad> after <eos>, and the probability of
each chosen token (1 after <eos>): their product is the probability of the answer.
"""
import numpy as np
import torch
import torch.nn.functional as F

from codec import BOS, EOS, MASK, PAD, Batch


def token_loss(logits, labels):
    """Cross-entropy of every position (B, T); 0 where the label is -100."""
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")


def mean_or_per_answer_token(ce, labels, b: Batch, per_token, columns=None):
    """The mean over labelled positions or, with per_token, the loss of each answer token (B, A),
    0 past the answer; columns (B, A) says where answer token j sits in ce (default: column j)."""
    if not per_token:
        return ce.sum() / (labels != -100).sum().clamp(min=1)
    A = b.answer.shape[1]
    j = torch.arange(A, device=ce.device)[None, :]
    ce = ce.gather(1, columns.clamp(max=ce.shape[1] - 1)) if columns is not None else ce[:, :A]
    return torch.where(j[:, : ce.shape[1]] < b.answer_len[:, None], ce, 0.0)


def greedy(first_logits, step, max_new):
    """Batched greedy decoding until every row has written <eos> (or max_new tokens).
    step(tokens (B,)) -> logits (B, V) of the next position. Each step does the least it can, so
    that one problem is answered fast: a row that is done is still stepped (its tokens become <pad>
    at the end) and the probabilities are taken once, after the loop. The logits may be torch
    tensors or numpy arrays (an onnxruntime model's, onnxrun.py): the loop uses what both have, so
    an exported model's steps never wait on PyTorch's per-operation overhead."""
    toks, seen, logits, done = [], [], first_logits, None
    for t in range(max_new):
        tok = logits.argmax(-1)
        toks.append(tok)
        seen.append(logits)
        done = tok == EOS if done is None else done | (tok == EOS)
        if t == max_new - 1 or bool(done.all()):
            break
        logits = step(tok)
    tok, logits = (torch.stack(x, 1) if torch.is_tensor(x[0]) else torch.from_numpy(np.stack(x, 1)) for x in (toks, seen))
    prob = logits.float().softmax(-1).gather(-1, tok[..., None])[..., 0]
    return after_eos_padded(tok, prob)


def after_eos_padded(tok, prob):
    """<pad> (probability 1) in place of every token after a row's first <eos>."""
    eos = (tok == EOS).long()
    after = eos.cumsum(1) - eos > 0
    return tok.masked_fill(after, PAD), prob.masked_fill(after, 1.0)


# ----------------------------------------------------------------------------- decoder-only

def decoder_sequences(b: Batch):
    """x = prompt+answer (right-padded) without its last position; y = the next token where it
    belongs to the answer, -100 (ignored) elsewhere."""
    B, P = b.prompt.shape
    A = b.answer.shape[1]
    seq = torch.full((B, P + A), PAD, dtype=torch.long, device=b.prompt.device)
    seq[:, :P] = b.prompt
    pos = b.prompt_len[:, None] + torch.arange(A, device=seq.device)
    valid = torch.arange(A, device=seq.device)[None, :] < b.answer_len[:, None]
    seq.scatter_(1, pos, torch.where(valid, b.answer, seq.gather(1, pos)))
    labels = torch.full_like(seq, -100)
    labels.scatter_(1, pos - 1, torch.where(valid, b.answer, -100))
    # drop columns that are padding in every row; on a GPU finding them would wait for it, so not there
    width = P + A - 1 if seq.is_cuda else int((b.prompt_len + b.answer_len).max()) - 1
    return seq[:, :width], labels[:, :width]


def decoder_loss(model, b: Batch, per_token=False):
    x, y = decoder_sequences(b)
    columns = b.prompt_len[:, None] - 1 + torch.arange(b.answer.shape[1], device=x.device)
    return mean_or_per_answer_token(token_loss(model(x), y), y, b, per_token, columns)


def decoder_generate(model, prompt, prompt_len, max_new):
    logits, state = model.step(prompt)
    first = logits[range(prompt.shape[0]), (prompt_len - 1).tolist()]  # indexes a numpy array as well

    def step(tok):
        nonlocal state
        logits, state = model.step(tok[:, None], state)
        return logits[:, -1]

    return greedy(first, step, max_new)


# ----------------------------------------------------------------------------- encoder-decoder

def encdec_loss(model, b: Batch, per_token=False):
    dec_in = torch.cat((torch.full_like(b.answer[:, :1], BOS), b.answer[:, :-1]), 1)
    y = b.answer.masked_fill(b.answer == PAD, -100)
    return mean_or_per_answer_token(token_loss(model(b.prompt, dec_in), y), y, b, per_token)


def encdec_generate(model, prompt, prompt_len, max_new):
    state = model.encode(prompt)

    def step(tok):
        nonlocal state
        logits, state = model.step(tok[:, None], state)
        return logits[:, -1]

    return greedy(step(torch.full_like(prompt[:, 0], BOS)), step, max_new)


# ----------------------------------------------------------------------------- encoder slots

def slot_inputs(prompt, prompt_len, n_slots):
    """The prompt followed by n_slots <mask> tokens, right-padded; and the slots' positions (B, n_slots)."""
    B, P = prompt.shape
    x = torch.full((B, P + n_slots), PAD, dtype=torch.long, device=prompt.device)
    x[:, :P] = prompt
    slot_pos = prompt_len[:, None] + torch.arange(n_slots, device=x.device)
    x.scatter_(1, slot_pos, MASK)
    return x[:, : P + n_slots], slot_pos


def slot_labels(b: Batch, n_slots):
    """The answer in the slots (B, n_slots): target then <eos>, -100 in the slots after it."""
    y = torch.full((len(b), n_slots), -100, dtype=torch.long, device=b.answer.device)
    k = min(n_slots, b.answer.shape[1])
    y[:, :k] = torch.where(torch.arange(k, device=y.device)[None, :] < b.answer_len[:, None], b.answer[:, :k], -100)
    return y


def slots_loss(model, b: Batch, per_token=False):
    # Every one of n_slots, even past the batch's longest answer: decoding fills all of them, and a
    # model trained on only the slots its batch's answers fill learns far less (docs/defaults.md).
    x, slot_pos = slot_inputs(b.prompt, b.prompt_len, model.cfg.n_slots)
    y = slot_labels(b, model.cfg.n_slots)
    if model.cfg.refine:
        y = y.masked_fill(y == -100, PAD)  # every slot has a target: answer, <eos>, then <pad>
        if model.training:  # reveal a random share (uniform in [0, 1)) of each row's slots
            reveal = torch.rand(y.shape, device=y.device) < torch.rand(y.shape[0], 1, device=y.device)
            x = x.scatter(1, slot_pos, torch.where(reveal, y, MASK))
            y = y.masked_fill(reveal, -100)
    return mean_or_per_answer_token(token_loss(model(x, slot_pos), y), y, b, per_token)


def slots_generate(model, prompt, prompt_len, max_new):
    x, slot_pos = slot_inputs(prompt, prompt_len, model.cfg.n_slots)
    if not model.cfg.refine:
        prob, tok = model(x, slot_pos).float().softmax(-1).max(-1)
    else:  # fill the surest open slot of each row per pass until each row is complete up to its <eos>
        n = slot_pos.shape[1]
        idx = torch.arange(n, device=x.device)
        tok, prob = torch.full_like(slot_pos, MASK), torch.ones(slot_pos.shape, device=x.device)
        filled = torch.zeros_like(slot_pos, dtype=torch.bool)
        for _ in range(n):
            p, pred = model(x, slot_pos).float().softmax(-1).max(-1)
            tok, prob = torch.where(filled, tok, pred), torch.where(filled, prob, p)
            filled.scatter_(1, p.masked_fill(filled, -1.0).argmax(1, keepdim=True), True)
            x = x.scatter(1, slot_pos, torch.where(filled, tok, MASK))
            first_eos = torch.where(filled & (tok == EOS), idx, n).min(1, keepdim=True).values
            if bool((filled | (idx >= first_eos)).all()):
                break
    return after_eos_padded(tok[:, :max_new], prob[:, :max_new])


# ----------------------------------------------------------------------------- dispatch

LAYOUTS = {"decoder": (decoder_loss, decoder_generate), "encdec": (encdec_loss, encdec_generate),
           "slots": (slots_loss, slots_generate)}


def loss(model, b: Batch, per_token=False):
    """The answer-only training loss of model on a batch (per answer token with per_token)."""
    return LAYOUTS[model.layout][0](model, b, per_token)


@torch.no_grad()
def generate(model, prompt, prompt_len, max_new):
    """Greedy answers to right-padded prompts: (tokens, probability of each token)."""
    return LAYOUTS[model.layout][1](model, prompt, prompt_len, max_new)
