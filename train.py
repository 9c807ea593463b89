"""Train one architecture on one task for a wall-clock budget, then save and score the run.

    python train.py                          # asks: e.g. `gru 10min`, `tra 1hour`, `gpt 1min`
    python train.py gru 1min                 # the same for scripts
    python train.py gpt 10min --task arith --digits 3 --ops +- --format reversed
    python train.py gru 5min --resume models/gru_bracket_20261122_101500_1min
    python train.py gpt 1min --set n_layer=3 --set d_model=96 --lr 2e-3
    python train.py gpt 30000steps --task arith   # a step budget: the same run on any machine

The clock starts once the data is prepared and the model and optimizer are built (that setup is
timed and reported apart); the budget covers training and its periodic validation, which is held
to a small share of it. Then the validation and test splits are scored and the run is saved,
which takes a few seconds. The learning rate follows the budget: linear warm-up over the first
`--warmup` share of the time, then cosine decay to zero when the time is spent.

A budget may count optimizer steps instead (`30000steps`): the schedule and the validation points
then follow the share of steps taken, so a run does the same work, bit for bit on one machine,
however busy the machine is. That is the budget for comparing two settings; a time budget is the
one for asking what a machine buys in ten minutes.
"""
import os
import sys

import cli

if __name__ == "__main__":
    cli.quiet_ctrl_c()  # Ctrl-C while the imports below load: exit 130 without a traceback

import argparse
import itertools
import math
import re
import time
from dataclasses import asdict, dataclass, field

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

import archs
import dataset as D
import infer
import layouts
import lora
from codec import Batch, Codec
from cli import Parser, UserError, add_device_args, add_models_dir, ask, fail, pick_device
from files import check_writable, clean_stale
from runs import RunError, load_optimizer_state, load_run, machine, new_run_dir, read_json, save_run_or_rescue, versions
from tasks import codec_of, make_task

UNITS = {"s": 1, "sec": 1, "min": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
MAX_BUDGET = 2 * 86400
DEFAULT_WARMUP = 0.02  # share of the budget, for architectures whose TRAIN_DEFAULTS do not say
TIME_HELP = "a number and a unit: 30s, 1min, 10min, 1hour, 6hours, 2days (at most 2days)"
BUDGET_HELP = f"{TIME_HELP}, or optimizer steps: 30000steps"
MAX_STEPS = 10**9


def parse_budget(text: str) -> float:
    """Seconds in a budget like `90s`, `1min`, `1hour`, `2days`; ValueError with the reason."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|sec|min|hours?|days?)", text.strip())
    if not m:
        raise ValueError(f"malformed budget {text!r}; expected {TIME_HELP}")
    seconds = float(m.group(1)) * UNITS[m.group(2)]
    if seconds < 1 or seconds > MAX_BUDGET:
        raise ValueError(f"budget {text!r} is out of range; expected 1s up to 2days")
    return seconds


@dataclass(frozen=True)
class Budget:
    """What a run may spend: seconds of training (`10min`) or optimizer steps (`30000steps`)."""
    amount: float
    unit: str  # "s" or "steps"

    @classmethod
    def parse(cls, text: str) -> "Budget":
        m = re.fullmatch(r"(\d+)steps?", text.strip())
        if not m:
            try:
                return cls(parse_budget(text), "s")
            except ValueError as e:
                raise ValueError(str(e).replace(TIME_HELP, BUDGET_HELP)) from None
        if not 1 <= int(m.group(1)) <= MAX_STEPS:
            raise ValueError(f"budget {text!r} is out of range; expected 1steps up to {MAX_STEPS}steps")
        return cls(int(m.group(1)), "steps")

    def frac(self, elapsed: float, steps: int) -> float:
        """The share spent after `elapsed` seconds and `steps` steps."""
        return (steps if self.unit == "steps" else elapsed) / self.amount

    def left(self, elapsed: float, steps: int) -> str:
        if self.unit == "steps":
            return f"step {steps} of {self.amount:.0f}"
        return f"{elapsed:.0f}s / {max(0.0, self.amount - elapsed):.0f}s left"


def parse_choice(text: str) -> tuple[str, str]:
    """`gru 10min` -> ('gru', '10min'); ValueError explaining what is expected."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"expected an architecture and a budget, e.g. 'gru 10min' (architectures: {', '.join(archs.ARCHS)})")
    arch = archs.resolve(parts[0])
    Budget.parse(parts[1])
    return arch, parts[1]


def prompt_choice(console: Console) -> tuple[str, str]:
    console.print("Choose a model and a training time, e.g. [bold]gru 1min[/], [bold]tra 10min[/], "
                  "[bold]lstm 1hour[/], [bold]ber 10min[/], [bold]gpt 1min[/] (up to 2days).")
    return ask("Enter the model and training time: ", parse_choice, console)


@dataclass
class TrainConfig:
    arch: str
    budget: str
    data: D.DataSpec = field(default_factory=D.DataSpec)
    model: dict = field(default_factory=dict)  # overrides of the architecture's Config
    lr: float | None = None          # None: the architecture's TRAIN_DEFAULTS
    batch_size: int | None = None
    warmup: float | None = None      # share of the budget (time or steps) spent warming up the learning rate (None: the architecture's)
    weight_decay: float | None = None  # on weight matrices (None: the architecture's for the task, else 0)
    grad_clip: float = 1.0
    precision: str | None = None     # fp32, or bf16: the forward pass and loss under bfloat16 autocast
                                     # (weights, optimizer and scoring stay float32); None: fp32
    seed: int = 0
    device: str = "auto"
    threads: int | None = None       # torch CPU threads (default: all cores)
    val_points: int = 10             # validate at 1/10, 2/10, ... of the budget
    bucket: bool = True              # batch examples of similar length together
    curriculum: float | None = None  # share of the budget over which the longest prompt a batch may
                                     # hold grows from the train split's shortest to its longest
                                     # (0: every length from the start; None: the architecture's, else 0)
    models_dir: str = "models"
    data_dir: str = "data"
    resume: str | None = None        # continue this run (its model, data and settings)
    init_from: str | None = None     # start from this run's weights (and codec) on the task given
    lora: int | None = None          # with init_from: train rank-r adapters instead of all weights
    lora_alpha: float | None = None  # adapter scale alpha / r (default alpha = 2r)
    lora_targets: str = "attn,mlp,rnn"


def lr_at(frac: float, base: float, warmup: float) -> float:
    if frac < warmup:
        return base * frac / warmup
    progress = (frac - warmup) / max(1e-9, 1 - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batches(lengths: torch.Tensor, batch_size: int, gen: torch.Generator, bucket: bool):
    """Endless shuffled batches of indices. With bucket, each window of 32 batches is sorted by
    length before it is cut, so a batch pads little; the batch order is then shuffled again."""
    n = len(lengths)
    while True:
        perm = torch.randperm(n, generator=gen)
        if bucket:
            window = batch_size * 32
            chunks = []
            for s in range(0, n, window):
                w = perm[s: s + window]
                w = w[torch.argsort(lengths[w], stable=True)]
                chunks += list(w.split(batch_size))
            for i in torch.randperm(len(chunks), generator=gen).tolist():
                yield chunks[i]
        else:
            yield from perm.split(batch_size)


def shortest_first(prompt_len: torch.Tensor, lengths: torch.Tensor, batch_size: int, gen: torch.Generator, bucket: bool, cap):
    """A length curriculum's batches of indices: each window of 32 batches is drawn (with
    replacement) from the examples whose prompt is no longer than cap() tokens, at least a batch's
    worth of the shortest (with bucket sorted by length before it is cut, then shuffled); ends
    when cap() is None."""
    order = torch.argsort(prompt_len, stable=True)
    ranked = prompt_len[order].contiguous()
    while (longest := cap()) is not None:
        n = max(batch_size, int(torch.searchsorted(ranked, longest, right=True)))
        w = order[torch.randint(min(n, len(order)), (batch_size * 32,), generator=gen)]
        if bucket:
            w = w[torch.argsort(lengths[w], stable=True)]
        chunks = list(w.split(batch_size))
        for i in torch.randperm(len(chunks), generator=gen).tolist():
            yield chunks[i]


def curriculum_cap(frac: float, share: float, shortest: int, longest: int) -> int | None:
    """The longest prompt (tokens) a batch may hold at this share of the budget: from shortest at
    the start to longest at `share`, linearly; None once the curriculum is over."""
    if not share or frac >= share:
        return None
    return shortest + int((longest - shortest) * frac / share)


VAL_SHARE = 0.08  # most of the budget spent on validation along the way (the final scoring comes after the budget)
MIN_VAL = 50      # fewest validation problems at a point


def setup_model(cfg: TrainConfig, device, console):
    """The model to train (new, the resumed run's, or grown from a parent run) and its codec, task
    and prior metrics; fills cfg's unset training settings from the resumed run or the
    architecture's defaults."""
    prior = {}
    if cfg.resume:
        run = load_run(cfg.resume, device)
        model, codec, task, prior = run.model, run.codec, run.task, run.metrics
        cfg.arch, cfg.model, cfg.data = archs.resolve(run.config["arch"]), run.config["model"], D.DataSpec(**run.config["data"])
        for k in ("lr", "batch_size", "warmup", "weight_decay", "grad_clip", "precision"):
            if getattr(cfg, k) is None:
                setattr(cfg, k, run.config["train"].get(k))
        cfg.curriculum = cfg.curriculum or 0.0  # a resumed run has met every length: no curriculum unless asked
    elif cfg.init_from:
        task = make_task(cfg.data.task, cfg.data.options)
        model, codec, cfg.model = from_parent(load_run(cfg.init_from, "cpu"), cfg.arch, task, console)
    else:
        task = make_task(cfg.data.task, cfg.data.options)
        codec = codec_of(task)
        model, cfg.model = archs.build(cfg.arch, new_model_settings(cfg.arch, task, codec, cfg.model))
    fill_train_settings(cfg, task)
    return model.to(device).train(), codec, task, prior


def new_model_settings(arch, task, codec, overrides: dict) -> dict:
    """A new model's settings for the task: the architecture's task defaults under `overrides` (--set),
    and what the codec fixes (vocabulary size, digit ids for places)."""
    return with_codec({**archs.task_defaults(arch, task), **overrides}, codec)


def with_codec(settings: dict, codec) -> dict:
    """Model settings with what the codec fixes: the vocabulary size, and for digit places (places,
    place_bias) the ids of the digits and the decimal point, by which the model finds them."""
    settings = {**settings, "vocab_size": len(codec)}
    if settings.get("places") or settings.get("place_bias"):
        settings["digit_ids"], settings["point_id"] = codec.number_ids()
    return settings


def fill_train_settings(cfg: TrainConfig, task):
    """cfg's unset training settings from the architecture's defaults for the task."""
    defaults = archs.train_defaults(cfg.arch, task)
    cfg.lr = cfg.lr if cfg.lr is not None else defaults["lr"]
    cfg.batch_size = cfg.batch_size or defaults["batch_size"]
    cfg.warmup = cfg.warmup if cfg.warmup is not None else defaults.get("warmup", DEFAULT_WARMUP)
    cfg.weight_decay = cfg.weight_decay if cfg.weight_decay is not None else defaults.get("weight_decay", 0.0)
    cfg.precision = cfg.precision or "fp32"
    cfg.curriculum = cfg.curriculum if cfg.curriculum is not None else defaults.get("curriculum", 0.0)
    if not 0 <= cfg.curriculum < 1:
        raise UserError(f"--curriculum is the share of the budget the curriculum lasts, from 0 (none) to below 1, got {cfg.curriculum}")


def from_parent(parent, arch, task, console):
    """A model with the parent run's architecture, settings and weights, for a new task: the
    parent's codec with the task's new symbols appended (the parent's ids stay; embedding and head
    rows for the new ones start fresh), and the settings the architecture sizes by the task
    (GROWN_BY_TASK: ber's answer slots) enlarged where the task needs more. Says in one line what
    it added. Returns (model, codec, model settings)."""
    if archs.resolve(parent.config["arch"]) != arch:
        raise RunError(f"{parent.path} is a {parent.config['arch']} run; --init-from keeps the parent's architecture "
                       f"(python train.py {parent.config['arch']} ... --init-from {parent.path})")
    new = [s for s in task.symbols() if s not in parent.codec.stoi]
    codec = Codec(parent.codec.symbols + new)
    settings = with_codec(parent.config["model"], codec)
    if new:
        console.print(f"added to the parent's codec: {' '.join(new)} ({len(parent.codec)} -> {len(codec)} tokens; "
                      "their embeddings start fresh)", soft_wrap=True)
    needs = archs.task_defaults(arch, task)
    for k in archs.ARCHS[arch].GROWN_BY_TASK:
        if needs[k] > settings[k]:
            console.print(f"{arch} {k} {settings[k]} -> {needs[k]} for this task's longer answers (the new ones start fresh)",
                          soft_wrap=True)
            settings[k] = needs[k]
    model, settings = archs.build(arch, settings)
    own = model.state_dict()
    with torch.no_grad():
        for name, t in parent.model.state_dict().items():
            own[name][tuple(slice(0, n) for n in t.shape)].copy_(t)  # grown only along the vocabulary or slots
    return model, codec, settings


def make_optimizer(model, cfg: TrainConfig, resume_state=None):
    """AdamW over the trainable weights (LoRA: the adapters only), weight decay on matrices only;
    the resumed run's state when there is one."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98))
    if resume_state is not None:
        opt.load_state_dict(resume_state)
    return opt


@dataclass
class Data:
    """What the loop reads: the train split on the device, its lengths on the CPU (to cut and
    count batches without waiting for a GPU), validation and test examples, the data folder."""
    folder: str
    train: Batch
    prompt_len: torch.Tensor
    answer_len: torch.Tensor
    val: list
    test: list


def load_data(cfg: TrainConfig, codec, device) -> Data:
    folder = D.prepare(cfg.data, cfg.data_dir)
    train_set = D.load_batch(folder, "train", codec)
    return Data(folder, train_set.to(device), train_set.prompt_len, train_set.answer_len,
                D.load_split(folder, "val"), D.load_split(folder, "test"))


class Loop:
    """The training loop's counters and curve, and its validation along the way: at 1/10, 2/10 ...
    of the budget, on a share of the validation split sized so that validation takes at most
    VAL_SHARE of the time so far (a point is skipped rather than overspent)."""

    def __init__(self, cfg: TrainConfig, budget: Budget):
        self.cfg, self.budget = cfg, budget
        self.steps = self.samples = self.tokens = self.tokens_padded = 0
        self.val_time, self.val_em, self.val_n, self.val_shown, self.loss_ema = 0.0, None, MIN_VAL, 0, None
        self.next_val, self.interrupted, self.train_s, self.elapsed = 1, False, 0.0, 0.0
        self.curve = ["step,samples,elapsed_s,train_s,lr,loss,val_em,val_n"]

    def curve_row(self, elapsed, train_s, lr, val_em, val_n):
        """One row of curve.csv (the header above names its columns)."""
        self.curve.append(f"{self.steps},{self.samples},{elapsed:.2f},{train_s:.2f},{lr:.3e},{self.loss():.5f},{val_em:.5f},{val_n}")

    def count(self, batch: Batch, tokens: int, loss):
        """One optimizer step on batch (tokens: its unpadded tokens); loss as a running mean on the
        device, read only when shown."""
        self.steps += 1
        self.samples += len(batch)
        self.tokens_padded += len(batch) * (batch.prompt.shape[1] + batch.answer.shape[1])
        self.tokens += tokens
        loss = loss.detach()
        self.loss_ema = loss if self.loss_ema is None else self.loss_ema.lerp(loss, 0.05)

    def loss(self) -> float:
        return float("nan") if self.loss_ema is None else float(self.loss_ema)

    def validate_now(self, elapsed) -> int | None:
        """The validation point due at this elapsed time and step, or None."""
        frac = self.budget.frac(elapsed, self.steps)
        if self.next_val >= self.cfg.val_points or frac < self.next_val / self.cfg.val_points:
            return None
        point = min(self.cfg.val_points - 1, int(frac * self.cfg.val_points))
        self.next_val = point + 1
        return point if self.val_time <= VAL_SHARE * elapsed else None

    def validate(self, model, data, task, codec, device, elapsed, lr):
        v0 = time.time()
        n = min(len(data.val), self.val_n)
        self.val_em, self.val_shown = infer.exact_match(model, codec, data.val[:n], task, device), n
        spent = time.time() - v0
        self.val_time += spent
        total_s = elapsed / max(1e-9, self.budget.frac(elapsed, self.steps))  # the run's time, as it goes
        per_point = VAL_SHARE * total_s / self.cfg.val_points  # the time one point may take
        self.val_n = max(MIN_VAL, min(len(data.val), int(n * per_point / max(spent, 1e-3))))
        self.curve_row(elapsed, elapsed - self.val_time, lr, self.val_em, n)

    def info(self, elapsed) -> str:
        rate = self.samples / max(1e-9, elapsed - self.val_time)
        em = "-" if self.val_em is None else f"{self.val_em:.1%} of {self.val_shown}"
        return (f"step {self.steps} | {rate:.0f} samples/s | loss {self.loss():.4f} | val EM {em} | "
                f"{self.budget.left(elapsed, self.steps)}")


@dataclass
class Setup:
    """What a run trains with, made before its clock starts."""
    device: torch.device
    model: torch.nn.Module
    codec: Codec
    task: object
    prior: dict       # the resumed run's metrics ({} for a new run)
    params: int
    trainable: int
    data: Data
    opt: torch.optim.Optimizer
    seconds: float    # how long the setup took


def set_up(cfg: TrainConfig, console, quiet) -> Setup:
    """Device and seed, the model (with LoRA adapters when asked), the data and the optimizer."""
    t0 = time.time()
    check_writable(cfg.models_dir, "--models-dir")  # before any work: a run that cannot be saved is not started
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    clean_stale(cfg.models_dir)  # hidden folders of runs killed while saving
    model, codec, task, prior = setup_model(cfg, device, console)
    params = archs.n_params(model)
    if cfg.lora:
        adapted = lora.add(model, cfg.lora, cfg.lora_alpha or 2 * cfg.lora, lora.parse_targets(cfg.lora_targets))
        if not quiet:
            console.print(f"LoRA r={cfg.lora} on {len(adapted)} weight matrices: "
                          f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} of {params:,} parameters train",
                          soft_wrap=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    data = load_data(cfg, codec, device)
    opt = make_optimizer(model, cfg, load_optimizer_state(cfg.resume) if cfg.resume and not cfg.lora else None)
    return Setup(device, model, codec, task, prior, params, trainable, data, opt, time.time() - t0)


def run_loop(s: Setup, cfg: TrainConfig, budget: Budget, console, on_eval, quiet) -> Loop:
    """Train until the budget is spent (or Ctrl-C). The learning rate follows the budget's share."""
    model, opt, data, device = s.model, s.opt, s.data, s.device
    loop = Loop(cfg, budget)
    gen, lengths = torch.Generator().manual_seed(cfg.seed), data.prompt_len + data.answer_len
    shortest, longest = int(data.prompt_len.min()), int(data.prompt_len.max())
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        console=console, disable=quiet or not console.is_terminal)
    bar = progress.add_task(f"{cfg.arch} {cfg.data.task} {cfg.budget}", total=budget.amount, info="")
    t_start = time.time()
    cap = lambda: curriculum_cap(budget.frac(time.time() - t_start, loop.steps), cfg.curriculum, shortest, longest)  # noqa: E731
    stream = itertools.chain(shortest_first(data.prompt_len, lengths, cfg.batch_size, gen, cfg.bucket, cap) if cfg.curriculum else (),
                             batches(lengths, cfg.batch_size, gen, cfg.bucket))
    try:
        with progress:
            while (frac := budget.frac(time.time() - t_start, loop.steps)) < 1:
                lr = lr_at(frac, cfg.lr, cfg.warmup)
                for g in opt.param_groups:
                    g["lr"] = lr
                idx = next(stream)
                pl, al = data.prompt_len[idx], data.answer_len[idx]
                batch = data.train.take(idx.to(device), int(pl.max()), int(al.max()))
                with torch.autocast(device.type, torch.bfloat16, enabled=cfg.precision == "bf16"):
                    loss = layouts.loss(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                loop.count(batch, int(pl.sum() + al.sum()), loss)
                if (point := loop.validate_now(time.time() - t_start)) is not None:
                    loop.validate(model, data, s.task, s.codec, device, time.time() - t_start, lr)
                    if not quiet and not progress.live.is_started:
                        console.print(f"{cfg.arch} {point}/{cfg.val_points}: {loop.info(time.time() - t_start)}", soft_wrap=True)
                    if on_eval is not None:
                        on_eval(point, point / cfg.val_points, loop.val_em)
                if loop.steps % 10 == 0 and progress.live.is_started:
                    elapsed = time.time() - t_start
                    progress.update(bar, completed=min(1.0, budget.frac(elapsed, loop.steps)) * budget.amount, info=loop.info(elapsed))
    except KeyboardInterrupt:
        loop.interrupted = True
        console.print("[yellow]interrupted: saving what was trained so far (Ctrl-C again to abandon)[/yellow]")
    loop.train_s = time.time() - t_start - loop.val_time
    loop.elapsed = time.time() - t_start
    return loop


def parent_record(path) -> dict | None:
    """What config.json says of a fine-tuned run's parent: the folder, its architecture, its data."""
    if not path:
        return None
    c = read_json(os.path.join(path, "config.json"))
    return {"run": path, "arch": c.get("arch"), "data": c.get("data"), "data_sha256": c.get("data_sha256")}


def train(cfg: TrainConfig, console: Console | None = None, on_eval=None, quiet=False) -> dict:
    """Train, score the validation and test splits and save the run. Returns metrics (with `run`,
    the folder). on_eval(point, frac, val_em) is called at each validation point; it may raise to
    stop. The clock starts once the data, the model and the optimizer are ready (that setup is
    reported apart); training stops when the budget is spent; then val and test are scored."""
    console = console or Console(stderr=True)
    start = {"time": time.time(), "cpu": time.process_time(), "loadavg": list(os.getloadavg())}
    budget = Budget.parse(cfg.budget)
    s = set_up(cfg, console, quiet)
    loop = run_loop(s, cfg, budget, console, on_eval, quiet)
    if loop.steps == 0:
        if loop.interrupted:  # stopped before the first step: still an interrupt (hyper.py's workers stop on it)
            raise KeyboardInterrupt
        raise RunError(f"no training step was made in {cfg.budget} (setup took {s.seconds:.1f}s before the clock started); "
                       "nothing was saved")
    adapters = fold_adapters(s.model) if cfg.lora else None
    scores = score(s, loop)
    metrics = run_metrics(cfg, s, loop, budget, scores, start)
    return save(cfg, s, loop, run_config(cfg, s), metrics, adapters, console, quiet)


def fold_adapters(model) -> dict:
    """The LoRA adapters, then folded into the weights: the saved run is plain weights, the
    adapters are kept beside them."""
    adapters = lora.adapters(model)
    lora.merge(model)
    return adapters


def score(s: Setup, loop: Loop) -> dict:
    """Exact match on the whole validation and test splits; the curve's last row."""
    t0 = time.time()
    val_em = infer.exact_match(s.model, s.codec, s.data.val, s.task, s.device)
    test_em = infer.exact_match(s.model, s.codec, s.data.test, s.task, s.device)
    loop.curve_row(loop.elapsed, loop.train_s, 0, val_em, len(s.data.val))
    return {"val_em": val_em, "test_em": test_em, "final_eval_time": time.time() - t0}


def run_config(cfg: TrainConfig, s: Setup) -> dict:
    """config.json: the architecture and model settings, the data, the training settings, the codec."""
    train_cfg = {k: v for k, v in asdict(cfg).items() if k not in ("data", "model", "arch")}
    budget = Budget.parse(cfg.budget)
    train_cfg["budget_s"] = budget.amount if budget.unit == "s" else None
    return {"arch": cfg.arch, "model": cfg.model, "data": asdict(cfg.data), "data_dir": cfg.data_dir,
            "data_sha256": D.read_meta(s.data.folder)["sha256"], "train": train_cfg, "codec": s.codec.to_json(),
            "resumed_from": cfg.resume, "parent": parent_record(cfg.init_from)}


def run_metrics(cfg: TrainConfig, s: Setup, loop: Loop, budget: Budget, scores: dict, start: dict) -> dict:
    """metrics.json: scores, steps and samples (and totals over resumed runs), times, throughput,
    the seed, the machine's load and the package versions."""
    wall = time.time() - start["time"]
    budget_s = budget.amount if budget.unit == "s" else None
    return {"test_em": scores["test_em"], "val_em": scores["val_em"], "steps": loop.steps, "samples": loop.samples,
            "total_steps": loop.steps + int(s.prior.get("total_steps", s.prior.get("steps", 0))),
            "total_samples": loop.samples + int(s.prior.get("total_samples", s.prior.get("samples", 0))),
            "params": s.params, "trainable_params": s.trainable, "seed": cfg.seed, "budget_s": budget_s,
            "budget_steps": budget.amount if budget.unit == "steps" else None, "wall_time": wall, "setup_time": s.seconds,
            "train_time": loop.train_s, "val_time": loop.val_time, "final_eval_time": scores["final_eval_time"],
            "train_share": loop.train_s / max(1e-9, loop.elapsed if budget_s is None else budget_s),
            "samples_per_s": loop.samples / max(1e-9, loop.train_s), "tokens": loop.tokens,
            "tokens_padded": loop.tokens_padded, "train_flops_estimate": 6 * s.params * loop.tokens_padded,
            "final_loss": loop.loss(), "interrupted": loop.interrupted,
            "cpu_time_per_wall": (time.process_time() - start["cpu"]) / max(1e-9, wall),
            "loadavg_start": start["loadavg"], "loadavg_end": list(os.getloadavg()),
            "machine": machine(), "versions": versions(), "device": str(s.device),
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def save(cfg: TrainConfig, s: Setup, loop: Loop, config: dict, metrics: dict, adapters, console, quiet) -> dict:
    """Save the run folder (elsewhere, saying why, if its place cannot be written; at a terminal
    the user may name a folder) and return metrics with `run` and `save_problem`."""
    run = new_run_dir(cfg.models_dir, cfg.arch, cfg.data.task, cfg.budget)
    ask = None
    if not quiet and sys.stdin.isatty():
        ask = lambda problem: console.input(f"[red]{problem}[/red]\nEnter a folder to save the run in (empty: give up): ").strip()  # noqa: E731
    run, metrics["save_problem"] = save_run_or_rescue(run, s.model, None if cfg.lora else s.opt, config, metrics,
                                                      "\n".join(loop.curve) + "\n", ask, adapters)
    metrics["run"] = run
    if not quiet and not metrics["save_problem"]:
        console.print(f"saved {run}: test exact match {metrics['test_em']:.2%} after {loop.steps} steps "
                      f"({metrics['samples_per_s']:.0f} samples/s, {s.params:,} parameters, {loop.train_s:.1f}s of "
                      f"{metrics['budget_s'] or loop.elapsed:.0f}s training, {s.seconds:.1f}s setup)", soft_wrap=True)
    return metrics


def parse_set(items) -> dict:
    """--set key=value pairs; values parsed as int, float, bool or left as strings."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                pass
        else:
            v = {"true": True, "false": False}.get(v.lower(), v)
        out[k.strip()] = v
    return out


def resume_check(p, a, arch, console):
    """--resume continues a run on its own model and data: refuse the flags that say otherwise
    (dataset.check_kept) and --set, and say what is reused."""
    if not os.path.isdir(a.resume):
        raise RunError(f"no run folder at {a.resume}")
    old = read_json(os.path.join(a.resume, "config.json"))
    if old.get("arch") != arch:
        raise RunError(f"{a.resume} is a {old.get('arch')} run, not {arch}; --resume continues it as it was")
    keeps = "a resumed run keeps its own data and model settings (train a new run for others)"
    if a.set:
        raise RunError(f"--set cannot apply with --resume: {keeps}")
    D.check_kept(a, p, D.DataSpec(**old["data"]), a.resume, keeps)
    has_opt = os.path.isfile(os.path.join(a.resume, "optimizer.pt"))
    console.print(f"resuming {a.resume}: its weights, data and settings"
                  + (" and optimizer state" if has_opt else "; optimizer.pt is missing, so the optimizer starts afresh"))


def fine_tune_check(a, arch):
    """--init-from and --lora: what cannot apply is refused in one line, before anything is written."""
    if a.lora is not None and a.lora < 1:
        raise RunError(f"--lora is the adapters' rank, a whole number of at least 1, got {a.lora}")
    if a.lora is not None and not a.init_from:
        raise RunError("--lora adapts a trained model: give the parent run with --init-from")
    if a.lora_alpha is not None and (a.lora is None or a.lora_alpha <= 0):
        raise RunError("--lora-alpha needs --lora and must be positive")
    lora.parse_targets(a.lora_targets)
    if not a.init_from:
        return
    if a.resume:
        raise RunError("--init-from starts a new run from a parent and --resume continues a run: choose one")
    if a.set:
        raise RunError("--set cannot apply with --init-from: the model's settings are the parent's")
    if not os.path.isdir(a.init_from):
        raise RunError(f"no run folder at {a.init_from}")
    parent = read_json(os.path.join(a.init_from, "config.json")).get("arch")
    if parent != arch:
        raise RunError(f"{a.init_from} is a {parent} run; --init-from keeps the parent's architecture "
                       f"(python train.py {parent} ... --init-from {a.init_from})")


def build_parser():
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("arch", nargs="?", help=f"architecture: {', '.join(archs.ARCHS)} (long names too: transformer, bert)")
    p.add_argument("budget", nargs="?", help=BUDGET_HELP)
    D.add_data_args(p)
    g = p.add_argument_group("training")
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="model setting, e.g. --set d_model=96 (repeatable)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: the architecture's)")
    g.add_argument("--batch-size", type=int, help="examples per step (default: the architecture's)")
    g.add_argument("--warmup", type=float, help="share of the budget for warm-up (default: the architecture's)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay on weight matrices (default: the architecture's for the task, else 0)")
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--precision", choices=["fp32", "bf16"],
                   help="bf16: forward pass and loss under bfloat16 autocast, weights stay float32 (default fp32)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    add_device_args(g)
    g.add_argument("--no-bucket", action="store_true", help="do not batch examples of similar length together")
    g.add_argument("--curriculum", type=float, metavar="SHARE",
                   help="length curriculum: over this share of the budget the longest input a batch may hold grows from "
                        "the shortest to the longest in training (default: the architecture's, else 0: none)")
    add_models_dir(g)
    g.add_argument("--resume", metavar="RUN", help="continue a saved run (its model, data and settings) with a new budget")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--init-from", metavar="RUN", help="start from a saved run's weights and codec, on the task given here")
    g.add_argument("--lora", type=int, metavar="R", help="with --init-from: train rank-R adapters instead of every weight")
    g.add_argument("--lora-alpha", type=float, help="adapter scale alpha/R (default alpha = 2R)")
    g.add_argument("--lora-targets", default="attn,mlp,rnn",
                   help=f"weights to adapt: {', '.join(lora.TARGETS)} or all (default attn,mlp,rnn)")
    return p


def main(argv=None):
    cli.catch_ctrl_c()
    p = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and re.match(r"-\d", argv[1]):  # argparse would take `-1min` for an option
        fail(f"malformed budget {argv[1]!r}; expected {BUDGET_HELP}")
    a = p.parse_args(argv)
    console = Console()
    try:
        if a.arch is None and a.budget is None:
            if not sys.stdin.isatty():
                p.print_usage(sys.stderr)
                fail("give an architecture and a budget, e.g. `python train.py gru 1min` (no terminal to ask on)")
            arch, budget = prompt_choice(console)
        elif a.budget is None:
            fail(f"missing budget after {a.arch!r}; expected {BUDGET_HELP}")
        else:
            arch, budget = parse_choice(f"{a.arch} {a.budget}")
        if a.resume:
            resume_check(p, a, arch, console)
        fine_tune_check(a, arch)
        cfg = TrainConfig(arch=arch, budget=budget, data=D.spec_from_args(a), model=parse_set(a.set),
                          lr=a.lr, batch_size=a.batch_size, warmup=a.warmup, weight_decay=a.weight_decay,
                          grad_clip=a.grad_clip, precision=a.precision, seed=a.seed, device=a.device, threads=a.threads,
                          bucket=not a.no_bucket, curriculum=a.curriculum, models_dir=a.models_dir, data_dir=a.data_dir, resume=a.resume,
                          init_from=a.init_from, lora=a.lora, lora_alpha=a.lora_alpha, lora_targets=a.lora_targets)
        if not a.resume and not a.init_from:
            archs.config(arch, cfg.model)  # unknown settings fail before any work
        m = train(cfg, console)
        if m["save_problem"]:
            fail(f"{m['save_problem']}; the run is saved at {m['run']} instead (move it under {cfg.models_dir}/ to use it there)", 1)
    except (ValueError, UserError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; nothing was saved", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
