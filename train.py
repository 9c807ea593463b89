"""Train one architecture on one task for a wall-clock budget, then save and score the run.

    python train.py                          # asks: e.g. `gru 10min`, `tra 1hour`, `gpt 1min`
    python train.py gru 1min                 # the same for scripts
    python train.py gpt 10min --task arith --digits 3 --ops +- --format reversed
    python train.py gru 5min --resume models/gru_bracket_20261122_101500_1min
    python train.py gpt 1min --set n_layer=3 --set d_model=96 --lr 2e-3

The budget covers everything up to the end of training (data preparation, model building,
periodic validation); then the frozen test set is scored and the run is saved, which takes a few
seconds. The learning rate follows the budget: linear warm-up over the first `--warmup` share of
the time, then cosine decay to zero when the time is spent.
"""
import argparse
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

import archs
import dataset as D
import evaluate
from runs import (Parser, RunError, fail, load_optimizer_state, load_run, machine, pick_device, new_run_dir, read_json,
                  save_run_or_rescue, versions)

UNITS = {"s": 1, "sec": 1, "min": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
MAX_BUDGET = 2 * 86400
DEFAULT_WARMUP = 0.02  # share of the budget, for architectures whose TRAIN_DEFAULTS do not say
BUDGET_HELP = "a number and a unit: 30s, 1min, 10min, 1hour, 6hours, 2days (at most 2days)"


def parse_budget(text: str) -> float:
    """Seconds in a budget like `90s`, `1min`, `1hour`, `2days`; ValueError with the reason."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|sec|min|hours?|days?)", text.strip())
    if not m:
        raise ValueError(f"malformed budget {text!r}; expected {BUDGET_HELP}")
    seconds = float(m.group(1)) * UNITS[m.group(2)]
    if seconds < 1 or seconds > MAX_BUDGET:
        raise ValueError(f"budget {text!r} is out of range; expected 1s up to 2days")
    return seconds


def parse_choice(text: str) -> tuple[str, str]:
    """`gru 10min` -> ('gru', '10min'); ValueError explaining what is expected."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"expected an architecture and a budget, e.g. 'gru 10min' (architectures: {', '.join(archs.ARCHS)})")
    try:
        arch = archs.resolve(parts[0])
    except KeyError:
        raise ValueError(f"unknown architecture {parts[0]!r}; choose one of: {', '.join(archs.ARCHS)}") from None
    parse_budget(parts[1])
    return arch, parts[1]


def prompt_choice(console: Console) -> tuple[str, str]:
    console.print("Choose a model and a training time, e.g. [bold]gru 1min[/], [bold]tra 10min[/], "
                  "[bold]lstm 1hour[/], [bold]ber 10min[/], [bold]gpt 1min[/] (up to 2days).")
    while True:
        try:
            answer = console.input("Enter the model and training time: ")
        except EOFError:
            fail("no answer given")
        try:
            return parse_choice(answer)
        except ValueError as e:
            console.print(f"[red]{e}[/red] Try again.")


@dataclass
class TrainConfig:
    arch: str
    budget: str
    data: D.DataSpec = field(default_factory=D.DataSpec)
    model: dict = field(default_factory=dict)  # overrides of the architecture's Config
    lr: float | None = None          # None: the architecture's TRAIN_DEFAULTS
    batch_size: int | None = None
    warmup: float | None = None      # share of the budget spent warming up the learning rate (None: the architecture's)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None       # torch CPU threads (default: all cores)
    val_points: int = 10             # validate at 1/10, 2/10, ... of the budget
    bucket: bool = True              # batch examples of similar length together
    models_dir: str = "models"
    data_dir: str = "data"
    resume: str | None = None


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


class Pruned(Exception):
    """Raised by an on_eval callback (hyper.py) to stop a run early."""


def train(cfg: TrainConfig, console: Console | None = None, on_eval=None, quiet=False) -> dict:
    """Train, score the test split and save the run. Returns metrics (with `run`, the folder).
    on_eval(point, frac, val_em) is called at each validation point; it may raise to stop."""
    t_start = time.time()
    console = console or Console(stderr=True)
    budget_s = parse_budget(cfg.budget)
    deadline = t_start + budget_s
    cpu_start = time.process_time()
    load_start = list(os.getloadavg())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)

    prior = {}
    if cfg.resume:
        model, old, prior = load_run(cfg.resume, device)
        cfg.arch, cfg.model, cfg.data = old["arch"], old["model"], D.DataSpec(**old["data"])
        for k in ("lr", "batch_size", "warmup", "weight_decay", "grad_clip"):
            if getattr(cfg, k) is None:
                setattr(cfg, k, old["train"][k])
    task = D.make_task(cfg.data.task, cfg.data.options)
    defaults = archs.ARCHS[cfg.arch].TRAIN_DEFAULTS
    cfg.lr = cfg.lr if cfg.lr is not None else defaults["lr"]
    cfg.batch_size = cfg.batch_size or defaults["batch_size"]
    cfg.warmup = cfg.warmup if cfg.warmup is not None else defaults.get("warmup", DEFAULT_WARMUP)
    if not cfg.resume:
        if cfg.arch == "ber":
            cfg.model.setdefault("n_slots", task.max_target_len() + 1)
        model, model_cfg = archs.build(cfg.arch, cfg.model)
        cfg.model = model_cfg
        model.to(device)

    folder = D.prepare(cfg.data, cfg.data_dir)
    train_set = D.load_batch(folder, "train").to(device)
    val_examples = D.load_split(folder, "val")
    test_examples = D.load_split(folder, "test")
    lengths = (train_set.prompt_len + train_set.answer_len).cpu()

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98))
    if cfg.resume and (state := load_optimizer_state(cfg.resume)) is not None:
        opt.load_state_dict(state)
    gen = torch.Generator().manual_seed(cfg.seed)
    stream = batches(lengths, cfg.batch_size, gen, cfg.bucket)
    params = archs.n_params(model)

    steps = samples = tokens = tokens_padded = 0
    val_time, val_em, loss_ema = 0.0, None, None
    curve = ["step,samples,elapsed_s,train_s,lr,loss,val_em"]
    next_val = 1
    interrupted = False
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                        console=console, disable=quiet or not console.is_terminal)
    bar = progress.add_task(f"{cfg.arch} {cfg.data.task} {cfg.budget}", total=budget_s, info="")
    model.train()
    try:
        with progress:
            while True:
                now = time.time()
                frac = (now - t_start) / budget_s
                if now >= deadline:
                    break
                lr = lr_at(frac, cfg.lr, cfg.warmup)
                for g in opt.param_groups:
                    g["lr"] = lr
                batch = train_set[next(stream).to(device)]
                loss = model.loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                steps += 1
                samples += len(batch)
                tokens_padded += batch.prompt.numel() + batch.answer.numel()
                tokens += int(batch.prompt_len.sum() + batch.answer_len.sum())
                lv = loss.item()
                loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
                if next_val < cfg.val_points and time.time() >= t_start + budget_s * next_val / cfg.val_points:
                    next_val = min(cfg.val_points - 1, int((time.time() - t_start) / budget_s * cfg.val_points))
                    v0 = time.time()
                    val_em = evaluate.exact_match(model, val_examples, task, device)
                    val_time += time.time() - v0
                    elapsed = time.time() - t_start
                    curve.append(f"{steps},{samples},{elapsed:.2f},{elapsed - val_time:.2f},{lr:.3e},{loss_ema:.5f},{val_em:.5f}")
                    if not progress.live.is_started:
                        if not quiet:
                            console.print(f"{cfg.arch} {next_val}/{cfg.val_points}: step {steps}, {samples / max(1e-9, elapsed - val_time):.0f} samples/s, "
                                          f"loss {loss_ema:.4f}, val EM {val_em:.2%}, {elapsed:.0f}s of {budget_s:.0f}s")
                    if on_eval is not None:
                        on_eval(next_val, next_val / cfg.val_points, val_em)
                    next_val += 1
                if steps % 10 == 0 or steps < 10:
                    elapsed = time.time() - t_start
                    info = (f"step {steps} | {samples / max(1e-9, elapsed - val_time):.0f} samples/s | loss {loss_ema:.4f} | val EM "
                            f"{'-' if val_em is None else f'{val_em:.1%}'} | {elapsed:.0f}s / {budget_s - elapsed:.0f}s left")
                    progress.update(bar, completed=min(elapsed, budget_s), info=info)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: saving what was trained so far (Ctrl-C again to abandon)[/yellow]")
    train_end = time.time()

    e0 = time.time()
    val_em = evaluate.exact_match(model, val_examples, task, device)
    test_em = evaluate.exact_match(model, test_examples, task, device)
    eval_time = time.time() - e0
    wall = time.time() - t_start
    curve.append(f"{steps},{samples},{train_end - t_start:.2f},{train_end - t_start - val_time:.2f},0,{loss_ema or float('nan'):.5f},{val_em:.5f}")

    train_cfg = {k: v for k, v in asdict(cfg).items() if k not in ("data", "model", "arch")}
    train_cfg["budget_s"] = budget_s
    config = {"arch": cfg.arch, "model": cfg.model, "data": asdict(cfg.data), "data_dir": cfg.data_dir,
              "data_sha256": D.read_meta(folder)["sha256"], "train": train_cfg, "vocab": D.VOCAB,
              "resumed_from": cfg.resume}
    train_s = train_end - t_start - val_time
    metrics = {"test_em": test_em, "val_em": val_em, "steps": steps, "samples": samples,
               "total_steps": steps + int(prior.get("total_steps", 0)), "total_samples": samples + int(prior.get("total_samples", 0)),
               "params": params, "seed": cfg.seed, "budget_s": budget_s, "wall_time": wall,
               "train_time": train_s, "val_time": val_time, "final_eval_time": eval_time,
               "samples_per_s": samples / max(1e-9, train_s), "tokens": tokens, "tokens_padded": tokens_padded,
               "train_flops_estimate": 6 * params * tokens_padded, "final_loss": loss_ema, "interrupted": interrupted,
               "cpu_time_per_wall": (time.process_time() - cpu_start) / max(1e-9, wall),
               "loadavg_start": load_start, "loadavg_end": list(os.getloadavg()),
               "machine": machine(), "versions": versions(), "device": str(device),
               "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    run = new_run_dir(cfg.models_dir, cfg.arch, cfg.data.task, cfg.budget)
    ask = None
    if not quiet and sys.stdin.isatty():
        ask = lambda problem: console.input(f"[red]{problem}[/red]\nEnter a folder to save the run in (empty: give up): ").strip()  # noqa: E731
    run, metrics["save_problem"] = save_run_or_rescue(run, model, opt, config, metrics, "\n".join(curve) + "\n", ask)
    metrics["run"] = run
    if not quiet and not metrics["save_problem"]:
        console.print(f"saved {run}: test exact match {test_em:.2%} after {steps} steps "
                      f"({metrics['samples_per_s']:.0f} samples/s, {params:,} parameters, {wall:.1f}s)")
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
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    g.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    g.add_argument("--no-bucket", action="store_true", help="do not batch examples of similar length together")
    g.add_argument("--models-dir", default="models")
    g.add_argument("--resume", metavar="RUN", help="continue a saved run (its model, data and settings) with a new budget")
    return p


def main(argv=None):
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
            if not os.path.isdir(a.resume):
                raise RunError(f"no run folder at {a.resume}")
            old_arch = read_json(os.path.join(a.resume, "config.json")).get("arch")
            if old_arch != arch:
                raise RunError(f"{a.resume} is a {old_arch} run, not {arch}; its data and model settings are reused")
        cfg = TrainConfig(arch=arch, budget=budget, data=D.spec_from_args(a), model=parse_set(a.set),
                          lr=a.lr, batch_size=a.batch_size, warmup=a.warmup, weight_decay=a.weight_decay,
                          grad_clip=a.grad_clip, seed=a.seed, device=a.device, threads=a.threads,
                          bucket=not a.no_bucket, models_dir=a.models_dir, data_dir=a.data_dir, resume=a.resume)
        if not a.resume:
            archs.config(arch, cfg.model)  # unknown settings fail before any work
        m = train(cfg, console)
        if m["save_problem"]:
            fail(f"{m['save_problem']}; the run is saved at {m['run']} instead (move it under {cfg.models_dir}/ to use it there)", 1)
    except (ValueError, RunError, D.DataError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; nothing was saved", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
