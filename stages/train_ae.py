"""train_ae: the convolutional autoencoder on the shared backbone (``model`` section).

Errors are per-pixel MSE on the [0, 1] scale, whatever ``input.normalize`` trains on.
"""
from __future__ import annotations

import time
from pathlib import Path

from stages.core import builders, paths, plots
from stages.core.device import reconstructions, resolve_device
from stages.core.inputs import load_tensors
from stages.core.cli import run
from stages.core.io import fmt_metrics, save_checkpoint, save_figure, write_json
from stages.core.models import checkpoint_config
from stages.core.params import top_level
from stages.core.training import live_log, train_and_test


def main(params: dict, root: Path = Path(".")) -> dict:
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    model, cfg = builders.autoencoder(params)
    model = model.to(device)
    data, _ = load_tensors(root / paths.PROCESSED_DIR, model.cfg.input)
    with live_log(root / paths.AE_PLOTS) as live:  # each epoch, as it goes
        history, report = train_and_test(model, data, cfg, "train_ae", live=live)
    metrics = {"ae": {"test_mse": report["test_mse"]}}

    save_checkpoint(root / paths.AE, model.state_dict(), checkpoint_config(model))
    write_json(root / paths.AE_METRICS, metrics)
    write_json(root / paths.AE_REPORT, report)
    save_figure(root / paths.AE_PLOTS / "curves.png", plots.curves(
        history, {"loss": f"{cfg.loss} per pixel, training scale", "mse": "MSE per pixel on [0, 1]"}, "train_ae"))
    save_figure(root / paths.AE_PLOTS / "reconstructions.png",
                plots.rows_of_images(reconstructions(model, data["test"][0][:16]), "AE, test set"))
    print(f"train_ae: {fmt_metrics(report)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main, stage=True)
