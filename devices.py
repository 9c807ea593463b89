"""The device a run or script works on, chosen in one place (every script's --device and --threads,
training, scoring, hyper.py's workers and the bench call choose): `auto` is a CUDA GPU when torch
sees one, else the CPU."""
import torch

from errors import SettingsError


def choose(name="auto", threads: int | None = None) -> torch.device:
    """The device `name` means (auto, cpu, cuda, cuda:N, or a torch.device), with torch's CPU
    threads set to `threads` when given; SettingsError for a device this machine lacks."""
    if threads is not None:
        if threads < 1:
            raise SettingsError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingsError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use --device cpu or auto")
    return device


def name_of(device) -> str:
    """How results name a device: `cpu`, or the GPU's name (`cuda: NVIDIA H100 80GB HBM3`)."""
    device = torch.device(device)
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
