"""The training loop: a run's settings (settings.resolve) trained for its budget, scored and saved
as a run folder (runs.py). train.py, hyper.py's trials, python -m bench and bench.finetune call
train(); nothing else trains.

The clock starts once the data is prepared and the model and optimizer are built (that setup is
timed and reported apart); the budget covers training and its periodic validation, which is held
to a small share of it (VAL_SHARE). Then the validation and test splits are scored and the run is
saved, which takes a few seconds. The learning rate follows the budget: linear warm-up over the
first `warmup` share, then cosine decay to zero when the budget is spent. A budget in steps makes
the schedule and the validation points follow the share of steps taken, so a run does the same
work, bit for bit on one machine, however busy the machine is.
"""
import itertools
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass

import torch

import archs
import dataset as D
import devices
import infer
import layouts
import lora
from codec import Batch, Codec
from errors import RunError, UserError
from files import check_writable, clean_stale, tmp_dir
from runs import check_recorded, load_optimizer_state, load_run, machine, new_run_dir, save_run_or_rescue, versions
from settings import Budget, Request, Settings, Train, resolve

VAL_SHARE = 0.08  # most of the budget spent on validation along the way (the final scoring comes after the budget)
clock = time.time  # every time the loop reads; tests put a clock of their own here
MIN_VAL = 50      # fewest validation problems at a point


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


# ----------------------------------------------------------------------------- setup

def make_model(settings: Settings, resumed, parent, console, quiet):
    """The model to train: the resumed run's (weights loaded), a new one, or a new one holding the
    parent run's weights (grown only along the vocabulary or ber's slots, whose new rows start
    fresh; what grew is said in one line each)."""
    if resumed is not None:
        return resumed.model
    model, _ = archs.build(settings.arch, settings.model)
    if parent is None:
        return model
    new = settings.codec.symbols[len(parent.codec.symbols):]
    if new and not quiet:
        console.print(f"added to the parent's codec: {' '.join(new)} ({len(parent.codec)} -> {len(settings.codec)} tokens; "
                      "their embeddings start fresh)", soft_wrap=True)
    for k in archs.ARCHS[settings.arch].GROWN_BY_TASK:
        if settings.model[k] != parent.config["model"][k] and not quiet:
            console.print(f"{settings.arch} {k} {parent.config['model'][k]} -> {settings.model[k]} for this task's longer "
                          "answers (the new ones start fresh)", soft_wrap=True)
    own = model.state_dict()
    with torch.no_grad():
        for name, t in parent.model.state_dict().items():
            own[name][tuple(slice(0, n) for n in t.shape)].copy_(t)
    return model


def make_optimizer(model, train: Train, resume_state=None):
    """AdamW over the trainable weights (LoRA: the adapters only), weight decay on matrices only;
    the resumed run's state when there is one."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=train.lr, betas=(0.9, 0.98))
    if resume_state is not None:
        load_optimizer(opt, resume_state)
    return opt


def load_optimizer(opt, state: dict, where="optimizer.pt"):
    """Load a resumed run's optimizer state, checked now, before the clock starts (AdamW would
    otherwise find a moment of the wrong shape at its first step): the same parameter groups,
    and each parameter's moments of its shape, finite. RunError naming the first that is not."""
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise RunError(f"{where} does not match the model ({str(e).splitlines()[0][:200]})") from None
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if not isinstance(v, torch.Tensor):
                    raise RunError(f"{where} is corrupt (its {k} is {type(v).__name__}, not a tensor)")
                if v.dim() and v.shape != p.shape:
                    raise RunError(f"{where} does not match the model ({k} of shape {tuple(v.shape)} for a "
                                   f"parameter of shape {tuple(p.shape)})")
                if v.is_floating_point() and not torch.isfinite(v).all():
                    raise RunError(f"{where} holds moments that are not finite (NaN or infinity)")


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


def load_data(spec: D.DataSpec, data_dir: str, codec: Codec, device) -> Data:
    folder = D.prepare(spec, data_dir)
    train_set = D.load_batch(folder, "train", codec)
    return Data(folder, train_set.to(device), train_set.prompt_len, train_set.answer_len,
                D.load_split(folder, "val"), D.load_split(folder, "test"))


@dataclass
class Setup:
    """What a run trains with, made before its clock starts."""
    settings: Settings
    device: torch.device
    model: torch.nn.Module
    prior: dict       # the resumed run's metrics ({} for a new run)
    params: int
    trainable: int
    data: Data
    opt: torch.optim.Optimizer
    seconds: float    # how long the setup took


def set_up(request: Request, console, quiet) -> Setup:
    """The run's settings (resolved from request and the runs it continues or starts from), its
    device and seed, the model (with LoRA adapters when asked), the data and the optimizer."""
    t0 = clock()
    check_writable(request.models_dir, "--models-dir")  # before any work: a run that cannot be saved is not started
    device = devices.choose(request.device, request.threads)
    resumed = load_run(request.resume, device, data_dir=request.data_dir) if request.resume else None
    parent = load_run(request.init_from, "cpu", data_dir=request.data_dir) if request.init_from else None
    settings = resolve(request, resumed and resumed.config, parent and parent.config)
    if resumed and not quiet:
        has_opt = os.path.isfile(os.path.join(request.resume, "optimizer.pt"))
        console.print(f"resuming {request.resume}: its weights, data and settings"
                      + (" and optimizer state" if has_opt else "; optimizer.pt is missing, so the optimizer starts afresh"),
                      soft_wrap=True)
    torch.manual_seed(settings.train.seed)
    clean_stale(request.models_dir)  # hidden folders of runs killed while saving
    model = make_model(settings, resumed, parent, console, quiet).to(device).train()
    params = archs.n_params(model)
    if settings.lora:
        adapted = lora.add(model, settings.arch, settings.lora.rank, settings.lora.alpha, settings.lora.targets)
        if not quiet:
            console.print(f"LoRA r={settings.lora.rank} on {len(adapted)} weight matrices: "
                          f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} of {params:,} parameters train",
                          soft_wrap=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    data = load_data(settings.data, request.data_dir, settings.codec, device)
    if resumed:
        check_recorded(resumed.config, data.folder, request.resume)  # the data it was trained on, not a rewrite
    opt = make_optimizer(model, settings.train, load_optimizer_state(request.resume) if resumed and not settings.lora else None)
    return Setup(settings, device, model, resumed.metrics if resumed else {}, params, trainable, data, opt, clock() - t0)


# ----------------------------------------------------------------------------- the loop

class Loop:
    """The training loop's counters and curve, and its validation along the way: at 1/10, 2/10 ...
    of the budget, on a share of the validation split sized so that validation takes at most
    VAL_SHARE of the time so far (a point is skipped rather than overspent)."""

    def __init__(self, train: Train, budget: Budget):
        self.val_points, self.budget = train.val_points, budget
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
        if self.next_val >= self.val_points or frac < self.next_val / self.val_points:
            return None
        point = min(self.val_points - 1, int(frac * self.val_points))
        self.next_val = point + 1
        return point if self.val_time <= VAL_SHARE * elapsed else None

    def validate(self, model, data, task, codec, device, elapsed, lr):
        """Score the model on a share of the validation split at `elapsed` seconds (the time before
        this validation began: curve.csv's train_s is that less the validations before it)."""
        v0 = clock()
        n = min(len(data.val), self.val_n)
        self.val_em, self.val_shown = infer.exact_match(model, codec, data.val[:n], task, device), n
        spent = clock() - v0
        train_s = elapsed - self.val_time
        self.val_time += spent
        total_s = elapsed / max(1e-9, self.budget.frac(elapsed, self.steps))  # the run's time, as it goes
        per_point = VAL_SHARE * total_s / self.val_points  # the time one point may take
        self.val_n = max(MIN_VAL, min(len(data.val), int(n * per_point / max(spent, 1e-3))))
        self.curve_row(elapsed, train_s, lr, self.val_em, n)

    def info(self, elapsed) -> str:
        rate = self.samples / max(1e-9, elapsed - self.val_time)
        em = "-" if self.val_em is None else f"{self.val_em:.1%} of {self.val_shown}"
        return (f"step {self.steps} | {rate:.0f} samples/s | loss {self.loss():.4f} | val EM {em} | "
                f"{self.budget.left(elapsed, self.steps)}")


class Board:
    """A run's TensorBoard event files (--tensorboard), so that `tensorboard --logdir models`
    compares runs: loss, learning rate, validation exact match and samples/s at every validation
    point; the settings as hparams with the final validation, test and OOD exact match. Written
    while the run trains into a hidden folder of models_dir (cleaned like any other if the run is
    killed), then saved in the run folder as tensorboard/ with the rest of the run."""

    def __init__(self, models_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the image's serve target, or an install without requirements.txt
            raise UserError("--tensorboard needs the tensorboard package: pip install -r requirements.txt") from None
        self.folder = tmp_dir(models_dir)
        self.writer = SummaryWriter(self.folder)

    def point(self, loop: "Loop", lr: float, elapsed: float):
        step = loop.steps
        for name, value in (("loss", loop.loss()), ("lr", lr), ("val_em", loop.val_em),
                            ("samples_per_s", loop.samples / max(1e-9, elapsed - loop.val_time))):
            self.writer.add_scalar(name, value, step)

    def finish(self, settings: Settings, loop: "Loop", scores: dict) -> dict:
        """The final scores and the hparams written and the writer closed; the event files, as
        runs.save_run's files (tensorboard/<name> -> bytes)."""
        for name in ("val_em", "test_em", "ood_em"):
            self.writer.add_scalar(f"final/{name}", scores[name], loop.steps)
        hparams = {"arch": settings.arch, "task": settings.data.task, "budget": settings.budget,
                   **{k: v for k, v in {**settings.model, **asdict(settings.train)}.items() if isinstance(v, (int, float, str, bool))}}
        self.writer.add_hparams(hparams, {f"hparam/{k}": scores[k] for k in ("val_em", "test_em", "ood_em")}, run_name=".")
        self.writer.close()
        files = {}
        for name in sorted(os.listdir(self.folder)):
            with open(os.path.join(self.folder, name), "rb") as f:
                files[f"tensorboard/{name}"] = f.read()
        shutil.rmtree(self.folder, ignore_errors=True)
        return files


def run_loop(s: Setup, budget: Budget, console, on_eval, quiet, board: Board | None = None) -> Loop:
    """Train until the budget is spent (or Ctrl-C). The learning rate follows the budget's share."""
    from rich.progress import BarColumn, Progress, TextColumn
    model, opt, data, device, train, st = s.model, s.opt, s.data, s.device, s.settings.train, s.settings
    loop = Loop(train, budget)
    gen, lengths = torch.Generator().manual_seed(train.seed), data.prompt_len + data.answer_len
    shortest, longest = int(data.prompt_len.min()), int(data.prompt_len.max())
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        console=console, disable=quiet or not console.is_terminal)
    bar = progress.add_task(f"{st.arch} {st.data.task} {st.budget}", total=budget.amount, info="")
    t_start = clock()
    cap = lambda: curriculum_cap(budget.frac(clock() - t_start, loop.steps), train.curriculum, shortest, longest)  # noqa: E731
    stream = itertools.chain(shortest_first(data.prompt_len, lengths, train.batch_size, gen, train.bucket, cap) if train.curriculum else (),
                             batches(lengths, train.batch_size, gen, train.bucket))
    try:
        with progress:
            while (frac := budget.frac(clock() - t_start, loop.steps)) < 1:
                lr = lr_at(frac, train.lr, train.warmup)
                for g in opt.param_groups:
                    g["lr"] = lr
                idx = next(stream)
                pl, al = data.prompt_len[idx], data.answer_len[idx]
                batch = data.train.take(idx.to(device), int(pl.max()), int(al.max()))
                with torch.autocast(device.type, torch.bfloat16, enabled=train.precision == "bf16"):
                    loss = layouts.loss(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if train.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
                opt.step()
                loop.count(batch, int(pl.sum() + al.sum()), loss)
                if (point := loop.validate_now(clock() - t_start)) is not None:
                    loop.validate(model, data, st.task, st.codec, device, clock() - t_start, lr)
                    if board is not None:
                        board.point(loop, lr, clock() - t_start)
                    if not quiet and not progress.live.is_started:
                        console.print(f"{st.arch} {point}/{train.val_points}: {loop.info(clock() - t_start)}", soft_wrap=True)
                    if on_eval is not None:
                        on_eval(point, point / train.val_points, loop.val_em)
                if loop.steps % 10 == 0 and progress.live.is_started:
                    elapsed = clock() - t_start
                    progress.update(bar, completed=min(1.0, budget.frac(elapsed, loop.steps)) * budget.amount, info=loop.info(elapsed))
    except KeyboardInterrupt:
        loop.interrupted = True
        console.print("[yellow]interrupted: saving what was trained so far (Ctrl-C again to abandon)[/yellow]")
    loop.train_s = clock() - t_start - loop.val_time
    loop.elapsed = clock() - t_start
    return loop


# ----------------------------------------------------------------------------- the run

def train(request: Request, console=None, on_eval=None, quiet=False) -> dict:
    """Train the run request asks for, score the validation and test splits and save it. Returns
    metrics (with `run`, the folder, and `save_problem`). on_eval(point, frac, val_em) is called at
    each validation point; it may raise to stop."""
    if console is None:
        from rich.console import Console
        console = Console(stderr=True)
    start = {"time": clock(), "cpu": time.process_time(), "loadavg": list(os.getloadavg())}
    budget = Budget.parse(request.budget)
    s = set_up(request, console, quiet)
    board = Board(request.models_dir) if request.tensorboard else None
    try:
        loop = run_loop(s, budget, console, on_eval, quiet, board)
    except BaseException:
        if board is not None:
            board.writer.close()
            shutil.rmtree(board.folder, ignore_errors=True)
        raise
    if loop.steps == 0:
        if loop.interrupted:  # stopped before the first step: still an interrupt (hyper.py's workers stop on it)
            raise KeyboardInterrupt
        raise RunError(f"no training step was made in {request.budget} (setup took {s.seconds:.1f}s before the clock started); "
                       "nothing was saved")
    adapters = fold_adapters(s.model) if s.settings.lora else None
    scores = score(s, loop)
    metrics = run_metrics(s, loop, budget, scores, start)
    files = {}
    if board is not None:
        ood = D.load_split(s.data.folder, "ood")
        scores["ood_em"] = infer.exact_match(s.model, s.settings.codec, ood, s.settings.task, s.device)
        files = board.finish(s.settings, loop, scores)
    return save(request, s, loop, run_config(request, s, budget), metrics, adapters, console, quiet, files)


def fold_adapters(model) -> dict:
    """The LoRA adapters, then folded into the weights: the saved run is plain weights, the
    adapters are kept beside them."""
    adapters = lora.adapters(model)
    lora.merge(model)
    return adapters


def score(s: Setup, loop: Loop) -> dict:
    """Exact match on the whole validation and test splits; the curve's last row."""
    t0 = clock()
    task, codec = s.settings.task, s.settings.codec
    val_em = infer.exact_match(s.model, codec, s.data.val, task, s.device)
    test_em = infer.exact_match(s.model, codec, s.data.test, task, s.device)
    loop.curve_row(loop.elapsed, loop.train_s, 0, val_em, len(s.data.val))
    return {"val_em": val_em, "test_em": test_em, "final_eval_time": clock() - t0}


def parent_record(path) -> dict | None:
    """What config.json says of a fine-tuned run's parent: the folder, its architecture, its data."""
    if not path:
        return None
    from runs import read_json
    c = read_json(os.path.join(path, "config.json"))
    return {"run": path, "arch": c.get("arch"), "data": c.get("data"), "data_sha256": c.get("data_sha256")}


def run_config(request: Request, s: Setup, budget: Budget) -> dict:
    """config.json: the architecture and model settings, the data, the training settings (and
    where the run trained), the codec, and the run it continued or started from."""
    st = s.settings
    train = {"budget": st.budget, **asdict(st.train), "device": request.device, "threads": request.threads,
             "models_dir": request.models_dir, "data_dir": request.data_dir, "resume": st.resume, "init_from": st.init_from,
             "lora": st.lora and st.lora.rank, "lora_alpha": st.lora and st.lora.alpha,
             "lora_targets": st.lora.targets if st.lora else None, "budget_s": budget.seconds}
    return {"arch": st.arch, "model": st.model, "data": asdict(st.data), "data_dir": request.data_dir,
            "data_sha256": D.read_meta(s.data.folder)["sha256"], "train": train, "codec": st.codec.to_json(),
            "resumed_from": st.resume, "parent": parent_record(st.init_from)}


def run_metrics(s: Setup, loop: Loop, budget: Budget, scores: dict, start: dict) -> dict:
    """metrics.json: scores, steps and samples (and totals over resumed runs), times, throughput,
    the seed, the machine's load and the package versions."""
    wall = clock() - start["time"]
    return {"test_em": scores["test_em"], "val_em": scores["val_em"], "steps": loop.steps, "samples": loop.samples,
            "total_steps": loop.steps + int(s.prior.get("total_steps", s.prior.get("steps", 0))),
            "total_samples": loop.samples + int(s.prior.get("total_samples", s.prior.get("samples", 0))),
            "params": s.params, "trainable_params": s.trainable, "seed": s.settings.train.seed, "budget_s": budget.seconds,
            "budget_steps": budget.amount if budget.unit == "steps" else None, "wall_time": wall, "setup_time": s.seconds,
            "train_time": loop.train_s, "val_time": loop.val_time, "final_eval_time": scores["final_eval_time"],
            "train_share": loop.train_s / max(1e-9, loop.elapsed if budget.seconds is None else budget.seconds),
            "samples_per_s": loop.samples / max(1e-9, loop.train_s), "tokens": loop.tokens,
            "tokens_padded": loop.tokens_padded, "train_flops_estimate": 6 * s.params * loop.tokens_padded,
            "final_loss": loop.loss(), "interrupted": loop.interrupted,
            "cpu_time_per_wall": (time.process_time() - start["cpu"]) / max(1e-9, wall),
            "loadavg_start": start["loadavg"], "loadavg_end": list(os.getloadavg()),
            "machine": machine(), "versions": versions(), "device": str(s.device),
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def training_plot(curve: list[str], title: str) -> bytes | None:
    """training.png of a run: its curve.csv rows drawn against steps (loss, validation exact match)
    and against training seconds (validation exact match, learning rate); None where matplotlib
    is not installed (the image's serve target)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    rows = [dict(zip(curve[0].split(","), map(float, r.split(",")))) for r in curve[1:]]
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps, seconds = [r["step"] for r in rows], [r["train_s"] for r in rows]
    by_step.plot(steps, [r["loss"] for r in rows], marker=".", color="tab:red", label="loss (running mean)")
    by_step.set_xlabel("optimizer steps")
    by_step.set_ylabel("loss")
    em = by_step.twinx()
    em.plot(steps, [100 * r["val_em"] for r in rows], marker="o", label="validation exact match")
    em.set_ylabel("validation exact match (%)")
    em.set_ylim(-2, 102)
    by_time.plot(seconds, [100 * r["val_em"] for r in rows], marker="o")
    by_time.set_xlabel("training seconds")
    by_time.set_ylabel("validation exact match (%)")
    by_time.set_ylim(-2, 102)
    lr = by_time.twinx()
    lr.plot(seconds, [r["lr"] for r in rows], color="tab:grey", ls="--")
    lr.set_ylabel("learning rate (dashed)")
    by_step.set_title(title)
    for ax in (by_step, by_time):
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    png = io.BytesIO()
    fig.savefig(png, dpi=90, format="png")
    plt.close(fig)
    return png.getvalue()


def save(request: Request, s: Setup, loop: Loop, config: dict, metrics: dict, adapters, console, quiet, files=None) -> dict:
    """Save the run folder (elsewhere, saying why, if its place cannot be written; at a terminal
    the user may name a folder) and return metrics with `run` and `save_problem`."""
    st = s.settings
    run = new_run_dir(request.models_dir, st.arch, st.data.task, st.budget)
    ask = None
    if not quiet and sys.stdin.isatty():
        ask = lambda problem: console.input(f"[red]{problem}[/red]\nEnter a folder to save the run in (empty: give up): ").strip()  # noqa: E731
    picture = training_plot(loop.curve, f"{st.arch} on {st.data.task}, {st.budget}")
    files = {**(files or {}), **({"training.png": picture} if picture else {})}
    run, metrics["save_problem"] = save_run_or_rescue(run, s.model, None if st.lora else s.opt, config, metrics,
                                                      "\n".join(loop.curve) + "\n", ask, adapters, files)
    metrics["run"] = run
    if not quiet and not metrics["save_problem"]:
        console.print(f"saved {run}: test exact match {metrics['test_em']:.2%} after {loop.steps} steps "
                      f"({metrics['samples_per_s']:.0f} samples/s, {s.params:,} parameters, {loop.train_s:.1f}s of "
                      f"{metrics['budget_s'] or loop.elapsed:.0f}s training, {s.seconds:.1f}s setup)", soft_wrap=True)
    return metrics
