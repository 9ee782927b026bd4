"""train_classifier: the course's pixel MLP (784 -> 128 -> 64 -> 10, dropout 0.2).

Reads data/processed/. Writes models/classifier.pt, metrics/train_classifier.json and
plots/train_classifier/: history.csv, confusion.csv (for `dvc plots`), curves.png,
confusion.png, predictions.png. The best epoch is chosen on val; test is run once, after.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from stages.core import plots
from stages.core.data import PreprocessConfig, load_tensors, to_unit
from stages.core.io import fmt_metrics, save_checkpoint, save_figure, write_csv, write_json
from stages.core.models import MLP, MLPConfig, checkpoint_config
from stages.core.params import from_section, run
from stages.core.training import ClassifierConfig, batched, resolve_device, seed_everything, train_and_test

PROCESSED_DIR = Path("data/processed")
MODEL = Path("models/classifier.pt")
METRICS = Path("metrics/train_classifier.json")
PLOTS_DIR = Path("plots/train_classifier")


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(ClassifierConfig, params.get("train_classifier"), "train_classifier")
    pre = from_section(PreprocessConfig, params.get("preprocess"), "preprocess")
    device = resolve_device(params.get("device", "auto"))
    start = time.perf_counter()
    seed_everything(cfg.seed)
    data, classes = load_tensors(root / PROCESSED_DIR, pre)
    x_test, y_test = data["test"]
    model = MLP(MLPConfig(x_test[0].numel(), cfg.hidden, cfg.dropout, len(classes))).to(device)
    history, metrics = train_and_test(model, data, cfg, "train_classifier")
    model.eval()
    predicted = batched(lambda xb: model(xb).argmax(1), x_test, device).numpy()
    actual = y_test.numpy()

    save_checkpoint(root / MODEL, model, checkpoint_config(model))
    write_json(root / METRICS, metrics)
    write_csv(root / PLOTS_DIR / "history.csv", history)
    write_csv(root / PLOTS_DIR / "confusion.csv",
              pd.DataFrame({"actual": [classes[i] for i in actual], "predicted": [classes[i] for i in predicted]}))
    save_figure(root / PLOTS_DIR / "curves.png", plots.curves(history, "train_classifier"))
    save_figure(root / PLOTS_DIR / "confusion.png", plots.confusion(actual, predicted, classes, "Pixel MLP, test set"))
    titles = [f"{classes[p]} / {classes[t]}" for p, t in zip(predicted[:24], actual[:24])]
    save_figure(root / PLOTS_DIR / "predictions.png",
                plots.image_grid(to_unit(x_test[:24], pre), titles, suptitle="predicted / true (test)"))
    print(f"train_classifier: {fmt_metrics(metrics)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main)
