"""The one training loop: ``train_one_epoch``, ``evaluate_split`` and ``fit``.

The loop never asks which model it has: it calls ``model.loss(x, y) -> (loss, stats)``
and averages the stats. Data are in-memory tensors batched by index, with no per-batch
host-device sync; ``make bench`` compares it with the course's DataLoader loop. A stage
that wants its epochs visible while it runs (``dvc exp show``, ``dvc plots``) opens
:func:`live_log` and hands the logger to ``fit``.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import timing
from .config import TrainConfig
from .device import EVAL_BATCH, on_device
from .inputs import batches
from .errors import PipelineError
from .io import WriteError, write_json

if TYPE_CHECKING:
    from dvclive import Live


class TrainingError(PipelineError):
    """Training cannot go on (a non-finite loss); the message says which param to change."""


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # foreach: one multi-tensor update instead of a loop over parameters (a GPU's
    # default already).
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, foreach=True)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``onecycle``: warm up to ``lr`` and anneal to ~0 over the full budget of epochs
    (Smith & Topin, 2019): the same quality in fewer epochs than a constant ``lr``."""
    if cfg.lr_schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)


def _accumulate(total: dict, stats: dict, n: int) -> None:
    """Add a batch's mean stats, weighted by its size ``n``, to the running sums.

    Stats are 0-d tensors on the model's device: summing them there, and reading them
    once per epoch, spares a host-device sync per batch on a GPU."""
    for k, v in stats.items():
        total[k] = total.get(k, 0.0) + v * n


def _mean_stats(total: dict, n: int) -> dict[str, float]:
    return {k: float(v) / n for k, v in total.items()}


def progress(iterable, desc: str):
    """A live bar in a terminal that clears when done; nothing at all when the output
    is a file or a pipe (a CI log, `dvc repro > log`)."""
    return tqdm(iterable, desc=desc, unit="batch", leave=False, dynamic_ncols=True, disable=None)


def train_one_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int, generator: torch.Generator, desc: str = "",
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> dict:
    """One pass over shuffled batches; returns the stats averaged over the epoch.

    Raises :class:`TrainingError` when the epoch's mean loss is not finite."""
    model.train()
    total: dict = {}
    seen = 0
    bar = progress(batches(len(x), batch_size, generator, x.device), desc)
    for i, idx in enumerate(bar):
        loss, stats = model.loss(x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        _accumulate(total, stats, len(idx))
        seen += len(idx)
        if not bar.disable and i % 20 == 0:  # the live loss costs a sync: not every batch
            bar.set_postfix(loss=f"{float(total['loss']) / seen:.4g}", refresh=False)
    stats = _mean_stats(total, seen)
    if not math.isfinite(stats["loss"]):
        raise TrainingError(f"{desc}: non-finite loss ({stats['loss']})")
    return stats


@torch.no_grad()
def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH,
             seed: int = 0) -> dict:
    """Stats averaged over all of ``x`` in eval mode (no dropout, batch-norm running stats).

    A model that samples in eval mode (the VAE's z) draws from the global generator
    seeded here with ``seed``, inside ``fork_rng``: the same weights give the same
    numbers (the same noise every epoch; on a GPU, CUDA's own draws), and training's
    random stream is left as it was."""
    model.eval()
    total: dict = {}
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        for idx in batches(len(x), batch_size, device=x.device):
            _, stats = model.loss(x[idx], y[idx])
            _accumulate(total, stats, len(idx))
    return _mean_stats(total, len(x))


LIVE = "live"  # a training stage's DVCLive folder, inside its plots folder (as dvc.yaml lists it)


@contextlib.contextmanager
def live_log(plots: Path) -> Iterator[Live]:
    """A DVCLive logger writing to ``plots``/:data:`LIVE` as the epochs go: one TSV per logged value
    (``plots/metrics/<name>.tsv``, what dvc.yaml's plots draw) and ``metrics.json``, the
    latest values and the epoch as ``step`` (what ``dvc exp show`` reads, from a queued
    run's temporary workspace too).

    ``metrics.json`` says ``"partial": true`` until the stage's files land: its last
    version, ``"partial": false``, is written through io like every other file of the
    stage, so inside io.all_or_nothing it lands with them, and a killed or failed stage
    leaves ``true`` (and the epochs it logged). DVC runs the stage, keeps the experiment
    and dvc.yaml declares the plots: DVCLive saves no experiment, writes no dvc.yaml and
    no report, and ``Live.end()``, which would only do those, post to DVC Studio and
    `git add` files under ``dvc exp run``, is never called.
    """
    from dvclive import Live

    folder = plots / LIVE
    with _live_writes(folder):
        live = Live(str(folder), save_dvc_exp=False, dvcyaml=False, report=None)  # empties folder
        live.summary["partial"] = True
        live.make_summary()
    yield live
    write_json(Path(live.metrics_file), {**live.summary, "partial": False})


@contextlib.contextmanager
def _live_writes(folder: Path | str) -> Iterator[None]:
    """DVCLive's writes count as the stage's io (`make bench`), and, as DVCLive writes in
    place, a full or read-only disk there is one line, as io's own writes are."""
    try:
        with timing.phase("io"):
            yield
    except OSError as e:
        raise WriteError(f"cannot write {folder}: {e.strerror or e}; make room there (or make it writable) "
                         "and run the stage again (its live log is partial)") from None


def log_epoch(live: Live, row: dict) -> None:
    """One epoch's row of the history at step = epoch, with six significant digits as io
    writes every number, and the summary rewritten (``make_summary``, not ``next_step``,
    which would also signal the VS Code extension and queue the data for DVC Studio)."""
    with _live_writes(live.dir):
        live.step = row["epoch"]
        for name, value in row.items():
            if name != "epoch":
                live.log_metric(name, float(f"{value:.6g}"))
        live.make_summary()


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
        cfg: TrainConfig, section: str, label: str | None = None, live: Live | None = None
        ) -> tuple[pd.DataFrame, int]:
    """Train ``model`` in place and keep the weights of its best epoch on val loss.

    ``section`` is the params.yaml section of ``cfg`` (named in errors), ``label`` what
    the progress lines say (default: ``section``). Prints one line per epoch, and logs
    it to ``live`` if given (:func:`live_log`). Returns the per-epoch history and the
    best epoch. The history has the course's three curves: ``train_*`` averaged during
    the epoch (dropout on, weights moving), ``train_eval_*`` the same train loss
    re-evaluated after the epoch in eval mode, on a fixed train subset the size of val
    (seeded by ``cfg.seed``; one val pass of cost), ``val_*`` after the epoch; and
    ``lr`` at the epoch's end.
    """
    label = label or section
    train, val = on_device(model, *train), on_device(model, *val)
    opt = make_optimizer(model, cfg)
    scheduler = make_scheduler(opt, cfg, math.ceil(len(train[0]) / cfg.batch_size))
    generator = torch.Generator().manual_seed(cfg.seed)
    subset = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(cfg.seed))[: len(val[0])]
    train_subset = tuple(t[subset.to(t.device)] for t in train)
    rows, best_loss, best_epoch, best_state = [], math.inf, 0, None
    after_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        with timing.phase("epochs"):
            try:
                stats = train_one_epoch(model, opt, *train, cfg.batch_size, generator,
                                        f"{label} {epoch}/{cfg.epochs}", scheduler)
            except TrainingError as e:
                raise TrainingError(f"{e} in epoch {epoch}: training diverged; lower {section}.lr "
                                    f"(now {cfg.lr:g}) and run the stage again") from None
            val_stats = evaluate_split(model, *val)
        after = time.perf_counter()
        with timing.phase("train_eval"):
            train_stats = evaluate_split(model, *train_subset)
        after_seconds += time.perf_counter() - after
        row = {"epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}}
        row.update({f"train_eval_{k}": v for k, v in train_stats.items()})
        row.update({f"val_{k}": v for k, v in val_stats.items()})
        row["lr"] = opt.param_groups[0]["lr"]
        rows.append(row)
        if live is not None:
            log_epoch(live, row)
        improved = row["val_loss"] < best_loss
        if improved:
            best_loss, best_epoch = row["val_loss"], epoch
            best_state = copy.deepcopy(model.state_dict())
        print(f"{label} {epoch}/{cfg.epochs}: train_loss={row['train_loss']:.5g} val_loss={row['val_loss']:.5g}"
              f"{' *' if improved else ''} ({time.perf_counter() - start:.1f} s)", flush=True)
        if not improved and cfg.patience and epoch - best_epoch >= cfg.patience:
            break
    if best_state is None:  # every val loss was NaN
        raise TrainingError(f"{label}: validation loss was never finite; lower {section}.lr (now {cfg.lr:g})")
    print(f"{label}: train loss re-evaluated after each epoch on {len(subset)} train images: "
          f"{after_seconds:.1f} s in all", flush=True)
    model.load_state_dict(best_state)
    return pd.DataFrame(rows), best_epoch


def train_and_test(model: nn.Module, data: dict[str, tuple[torch.Tensor, torch.Tensor]], cfg: TrainConfig,
                   section: str, label: str | None = None, live: Live | None = None) -> tuple[pd.DataFrame, dict]:
    """:func:`fit` on train/val (logging to ``live``, if given), then evaluate test once
    with the selected weights.

    Metrics: ``test_<stat>``, the best epoch's ``val_<stat>``, ``best_epoch``, ``epochs_run``.
    """
    history, best_epoch = fit(model, data["train"], data["val"], cfg, section, label, live)
    test = evaluate_split(model, *on_device(model, *data["test"]))
    best = history.set_index("epoch").loc[best_epoch]
    metrics = {f"test_{k}": v for k, v in test.items()}
    metrics.update({f"val_{k}": float(best[f"val_{k}"]) for k in test})
    metrics.update(best_epoch=int(best_epoch), epochs_run=len(history))
    return history, metrics
