"""The one training loop: ``train_one_epoch``, ``evaluate`` and ``fit``.

The loop never asks which model it has: it calls ``model.loss(x, y)``, which returns
``(loss, stats)``, and averages the stats. Data are in-memory tensors, batched by
index: on a 2-core CPU that trains the MLP ~3.9x and the conv models ~1.2x faster than
a DataLoader over the torchvision dataset (benchmarks/throughput.py).
"""
from __future__ import annotations

import copy
import math
import os
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import batches, to_unit
from .models import MLPConfig, check_loss
from .params import PipelineError, check, check_choice

OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")


class TrainingError(PipelineError):
    """Training cannot go on (a non-finite loss); the message says which param to change."""


@dataclass(frozen=True)
class TrainConfig:
    """Keys every training section shares; stages subclass it for their own keys."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    patience: int = 0  # stop after this many epochs without a better val loss; 0 = never
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.patience >= 0, "patience", f"must be >= 0, got {self.patience}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")


@dataclass(frozen=True)
class ClassifierConfig(TrainConfig):
    """The MLP classifier's keys: its hidden sizes and dropout (pixels or latent features)."""

    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        MLPConfig(hidden=self.hidden, dropout=self.dropout)


@dataclass(frozen=True)
class ReconstructionConfig(TrainConfig):
    """The AE and VAE stages' keys: a reconstruction loss that must suit the data's scale."""

    loss: str = "mse"  # or "bce" (needs preprocess.normalize: unit)
    normalize: str = "unit"  # passed from the preprocess section, to check the loss against

    def __post_init__(self) -> None:
        super().__post_init__()
        check_loss(self.loss, self.normalize)


def seed_everything(seed: int) -> None:
    """Same seed, same params, same CPU: same metrics and same model bytes.

    On CUDA, deterministic algorithms are requested too; a few kernels have none and
    then raise rather than silently differ (see README, "Determinism").
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
        raise TrainingError("device: cuda was asked for but no CUDA device is available; use device: auto")
    return torch.device(name)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def _accumulate(total: dict[str, float], stats: dict, n: int) -> None:
    """Add a batch's mean stats, weighted by its size ``n``, to the running sums."""
    for k, v in stats.items():
        total[k] = total.get(k, 0.0) + v * n


def _mean_stats(total: dict, n: int) -> dict:
    return {k: v / n for k, v in total.items()}


def train_one_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int, generator: torch.Generator, desc: str = "") -> dict:
    """One pass over shuffled batches; returns the stats averaged over the epoch."""
    model.train()
    total: dict[str, float] = {}
    seen = 0
    bar = tqdm(list(batches(len(x), batch_size, generator)), desc=desc, unit="batch", leave=True, dynamic_ncols=True)
    for idx in bar:
        xb, yb = x[idx], y[idx]
        loss, stats = model.loss(xb, yb)
        if not math.isfinite(stats["loss"]):
            bar.close()
            raise TrainingError(f"{desc}: non-finite loss ({stats['loss']}) after {seen} images")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _accumulate(total, stats, len(idx))
        seen += len(idx)
        bar.set_postfix(loss=f"{total['loss'] / seen:.4g}", refresh=False)
    return _mean_stats(total, seen)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> dict:
    """Stats averaged over all of ``x`` in eval mode (no dropout, batch-norm running stats)."""
    model.eval()
    total: dict[str, float] = {}
    for idx in batches(len(x), batch_size):
        _, stats = model.loss(x[idx], y[idx])
        _accumulate(total, stats, len(idx))
    return _mean_stats(total, len(x))


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
            batch_size: int = 256) -> torch.Tensor:
    """``fn`` over ``x`` batch by batch on ``device``; results concatenated on the CPU.
    The caller sets the model's mode (``model.eval()``)."""
    return torch.cat([fn(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def reconstructions(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Originals and reconstructions on the [0, 1] scale, for display."""
    model.eval()
    device = next(model.parameters()).device
    pre = model.cfg.preprocess
    return {"original": to_unit(x, pre), "reconstruction": to_unit(batched(model, x, device), pre)}


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
        cfg: TrainConfig, name: str, eval_train: bool = False) -> tuple[pd.DataFrame, int]:
    """Train ``model`` in place and keep the weights of its best epoch on val loss.

    Returns the per-epoch history (``train_*`` averaged during the epoch, ``train_eval_*``
    re-evaluated after it when ``eval_train``, and ``val_*``) and the best epoch.
    """
    device = next(model.parameters()).device
    train = tuple(t.to(device) for t in train)
    val = tuple(t.to(device) for t in val)
    opt = make_optimizer(model, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    rows, best_loss, best_epoch, best_state = [], math.inf, 0, None
    for epoch in range(1, cfg.epochs + 1):
        try:
            stats = train_one_epoch(model, opt, *train, cfg.batch_size, generator, f"{name} {epoch}/{cfg.epochs}")
        except TrainingError as e:
            raise TrainingError(f"{e} in epoch {epoch}: training diverged; lower {name}.lr "
                                f"(now {cfg.lr:g}) and run the stage again") from None
        row = {"epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}}
        if eval_train:
            row.update({f"train_eval_{k}": v for k, v in evaluate(model, *train).items()})
        row.update({f"val_{k}": v for k, v in evaluate(model, *val).items()})
        rows.append(row)
        if row["val_loss"] < best_loss:
            best_loss, best_epoch = row["val_loss"], epoch
            best_state = copy.deepcopy(model.state_dict())
        elif cfg.patience and epoch - best_epoch >= cfg.patience:
            break
    if best_state is None:  # every val loss was NaN
        raise TrainingError(f"{name}: validation loss was never finite; lower {name}.lr (now {cfg.lr:g})")
    model.load_state_dict(best_state)
    return pd.DataFrame(rows), best_epoch


def train_and_test(model: nn.Module, data: dict[str, tuple[torch.Tensor, torch.Tensor]], cfg: TrainConfig,
                   name: str, eval_train: bool = False) -> tuple[pd.DataFrame, dict]:
    """:func:`fit` on train/val, then evaluate test once with the selected weights.

    Metrics: ``test_<stat>``, the best epoch's ``val_<stat>``, ``best_epoch``, ``epochs_run``.
    """
    history, best_epoch = fit(model, data["train"], data["val"], cfg, name, eval_train)
    device = next(model.parameters()).device
    test = evaluate(model, *(t.to(device) for t in data["test"]))
    best = history.set_index("epoch").loc[best_epoch]
    metrics = {f"test_{k}": v for k, v in test.items()}
    metrics.update({f"val_{k}": float(best[f"val_{k}"]) for k in test})
    metrics.update(best_epoch=int(best_epoch), epochs_run=len(history))
    return history, metrics
