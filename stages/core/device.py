"""Where tensors run: the device, seeding for determinism, and batched inference.

Every stage that runs a model uses these (the training stages, evaluate, downstream);
none of them needs the training loop for it.
"""
from __future__ import annotations

import os
import random
from typing import Callable

import numpy as np
import torch
from torch import nn

from .inputs import to_unit
from .params import ParamError, check_choice

DEVICES = ("auto", "cpu", "cuda")
# Inference needs no gradients: large batches cost little memory and save per-batch
# overhead (kernel launches on a GPU, small-matrix calls on a CPU).
EVAL_BATCH = 1024


def seed_everything(seed: int) -> None:
    """Same seed, same params, same CPU: same metrics and same model bytes.

    On CUDA, deterministic algorithms are requested too; a few kernels have none and
    then raise rather than silently differ (docs/determinism.md).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    check_choice(name, DEVICES, "device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("device", "cuda was asked for but no CUDA device is available; use device: auto")
    return torch.device(name)


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
            batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """``fn`` over ``x`` batch by batch on ``device``; results concatenated on the CPU.
    The caller sets the model's mode (``model.eval()``)."""
    return torch.cat([fn(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def reconstructions(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Originals and reconstructions on the [0, 1] scale, for display."""
    model.eval()
    device = next(model.parameters()).device
    pre = model.cfg.input
    return {"original": to_unit(x, pre), "reconstruction": to_unit(batched(model, x, device), pre)}


def on_device(model: nn.Module, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` on the model's device; images (4-D) and the model's conv weights in
    channels-last layout, which oneDNN and cuDNN run faster for these small convs."""
    device = next(model.parameters()).device
    model.to(memory_format=torch.channels_last)
    return tuple(t.to(device, memory_format=torch.channels_last) if t.dim() == 4 else t.to(device) for t in tensors)
