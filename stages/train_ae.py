"""train_ae: the convolutional autoencoder on the shared backbone (``model`` section).

Reads data/processed/. Writes models/ae.pt, metrics/train_ae.json (the headline:
test MSE), reports/train_ae.json (every val and test number) and
plots/train_ae/: history.csv (train loss averaged during the epoch, val after it, lr),
curves.png and reconstructions.png. Errors are per-pixel MSE on the [0, 1] scale.
"""
from __future__ import annotations

import time
from pathlib import Path

from stages.core import plots
from stages.core.data import load_tensors
from stages.core.device import reconstructions, resolve_device, seed_everything
from stages.core.io import fmt_metrics, save_checkpoint, save_figure, write_csv, write_json
from stages.core.models import AutoEncoder, checkpoint_config, conv_config
from stages.core.params import from_section, run, top_level
from stages.core.training import ReconstructionConfig, train_and_test

PROCESSED_DIR = Path("data/processed")
MODEL = Path("models/ae.pt")
METRICS = Path("metrics/train_ae.json")
REPORT = Path("reports/train_ae.json")
PLOTS_DIR = Path("plots/train_ae")

AEConfig = ReconstructionConfig  # the train_ae section: the shared training keys and `loss`


def build(params: dict) -> tuple[AutoEncoder, AEConfig]:
    """The untrained model, initialized from ``train_ae.seed``, and its training config
    (benchmarks/bench.py builds it here too)."""
    conv = conv_config(params)
    cfg = from_section(AEConfig, params, "train_ae", normalize=conv.normalize)
    seed_everything(cfg.seed)
    return AutoEncoder(conv, cfg.loss), cfg


def main(params: dict, root: Path = Path(".")) -> dict:
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    model, cfg = build(params)
    model = model.to(device)
    data, _ = load_tensors(root / PROCESSED_DIR, model.cfg.input)
    history, report = train_and_test(model, data, cfg, "train_ae")
    metrics = {"ae": {"test_mse": report["test_mse"]}}

    save_checkpoint(root / MODEL, model, checkpoint_config(model))
    write_json(root / METRICS, metrics)
    write_json(root / REPORT, report)
    write_csv(root / PLOTS_DIR / "history.csv", history)
    save_figure(root / PLOTS_DIR / "curves.png", plots.curves(history, "train_ae"))
    save_figure(root / PLOTS_DIR / "reconstructions.png",
                plots.rows_of_images(reconstructions(model, data["test"][0][:16]), "AE, test set"))
    print(f"train_ae: {fmt_metrics(report)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main)
