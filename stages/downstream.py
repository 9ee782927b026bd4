"""downstream: are the latents as useful as raw pixels? Classifiers on each representation.

Reads data/processed/ (pixels) and data/features/{ae,vae,pca}.npz. Every representation
gets the same classifiers and budget: logistic regression (sklearn, C chosen on val) and
the pixel classifier's MLP trained by the shared loop (early stopping on val). Features
are standardized with train statistics only; test is reported for the val-selected model.
Writes metrics/downstream.json, plots/downstream/{accuracy.csv, confusion.csv,
accuracy.png, confusion.png}.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning

from stages.core import plots
from stages.core.data import SPLITS, DataError, load_split
from stages.core.evaluation import logistic_regression, standardize, unit_pixels
from stages.core.io import fmt_metrics, load_arrays, save_figure, write_csv, write_json
from stages.core.models import MLP, MLPConfig
from stages.core.params import check, from_section, run
from stages.core.training import ClassifierConfig, batched, resolve_device, seed_everything, train_and_test

PROCESSED_DIR = Path("data/processed")
FEATURES_DIR = Path("data/features")
REPRESENTATIONS = ("pixels", "ae", "vae", "pca")
METRICS = Path("metrics/downstream.json")
PLOTS_DIR = Path("plots/downstream")


@dataclass(frozen=True)
class DownstreamConfig(ClassifierConfig):
    """The MLP's keys (as train_classifier's: shape, epochs, lr, patience...) and the logreg grid."""

    logreg_C: tuple[float, ...] = (0.01, 0.1, 1.0)
    logreg_max_iter: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.logreg_C) >= 1 and min(self.logreg_C) > 0, "logreg_C", f"need values > 0, got {list(self.logreg_C)}")
        check(self.logreg_max_iter >= 1, "logreg_max_iter", f"must be >= 1, got {self.logreg_max_iter}")


def load_representations(root: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], list[str]]:
    """{repr: {split: features}}, {split: labels}, class names."""
    splits = {s: load_split(root / PROCESSED_DIR, s) for s in SPLITS}
    features = {"pixels": {s: unit_pixels(splits[s].images) for s in SPLITS}}
    for name in REPRESENTATIONS[1:]:
        arrays = load_arrays(root / FEATURES_DIR / f"{name}.npz")
        features[name] = {s: arrays[f"x_{s}"] for s in SPLITS}
        for s in SPLITS:
            if not np.array_equal(arrays[f"y_{s}"], splits[s].labels):
                raise DataError(f"{FEATURES_DIR / name}.npz: {s} labels differ from {PROCESSED_DIR}; "
                                "rerun the evaluate stage (`dvc repro evaluate`)")
    return features, {s: splits[s].labels for s in SPLITS}, splits["test"].classes


def mlp_probe(x: dict[str, np.ndarray], y: dict[str, np.ndarray], cfg: DownstreamConfig, name: str,
              device: torch.device) -> tuple[dict, np.ndarray]:
    """The pixel classifier's MLP on these features, trained by the shared loop."""
    seed_everything(cfg.seed)
    data = {s: (torch.from_numpy(x[s]), torch.from_numpy(y[s])) for s in SPLITS}
    model = MLP(MLPConfig(x["train"].shape[1], cfg.hidden, cfg.dropout, int(y["train"].max()) + 1)).to(device)
    _, metrics = train_and_test(model, data, cfg, f"downstream {name}")
    model.eval()
    return metrics, batched(lambda xb: model(xb).argmax(1), data["test"][0], device).numpy()


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(DownstreamConfig, params.get("downstream"), "downstream")
    device = resolve_device(params.get("device", "auto"))
    features, labels, classes = load_representations(root)
    metrics, rows, predictions = {}, [], {}
    for name, x in features.items():
        start = time.perf_counter()
        x = standardize(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the budget is max_iter, by design
            lr = logistic_regression(x, labels, cfg.logreg_C, cfg.logreg_max_iter, cfg.seed)
        mlp, mlp_pred = mlp_probe(x, labels, cfg, name, device)
        metrics.update({f"{name}.dim": x["train"].shape[1], f"{name}.logreg_C": lr.C,
                        f"{name}.logreg_val_acc": lr.val_acc, f"{name}.logreg_test_acc": lr.test_acc,
                        f"{name}.mlp_val_acc": mlp["val_acc"], f"{name}.mlp_test_acc": mlp["test_acc"]})
        rows += [{"representation": name, "classifier": "logreg", "val_acc": lr.val_acc, "test_acc": lr.test_acc},
                 {"representation": name, "classifier": "mlp", "val_acc": mlp["val_acc"], "test_acc": mlp["test_acc"]}]
        predictions[(name, "logreg")], predictions[(name, "mlp")] = lr.test_pred, mlp_pred
        print(f"downstream: {name} (d={x['train'].shape[1]}): logreg {lr.test_acc:.4f}, mlp {mlp['test_acc']:.4f} "
              f"({time.perf_counter() - start:.1f} s)")

    table = pd.DataFrame(rows)
    table["model"] = table["representation"] + " " + table["classifier"]
    latent = table[table["representation"] != "pixels"]
    best = latent.loc[latent["val_acc"].idxmax()]  # chosen on val, like everything else
    pred = predictions[(best["representation"], best["classifier"])]
    metrics["best_latent_test_acc"] = float(best["test_acc"])  # which one: confusion.png title

    write_json(root / METRICS, metrics)
    write_csv(root / PLOTS_DIR / "accuracy.csv", table[["model", "representation", "classifier", "val_acc", "test_acc"]])
    write_csv(root / PLOTS_DIR / "confusion.csv", pd.DataFrame(
        {"actual": [classes[i] for i in labels["test"]], "predicted": [classes[i] for i in pred]}))
    save_figure(root / PLOTS_DIR / "accuracy.png", plots.bars(
        table.pivot(index="representation", columns="classifier", values="test_acc").loc[list(features)],
        "Test accuracy per representation"))
    save_figure(root / PLOTS_DIR / "confusion.png",
                plots.confusion(labels["test"], pred, classes, f"Best latent classifier: {best['model']} (test)"))
    print(f"downstream: {fmt_metrics({k: v for k, v in metrics.items() if k.endswith('test_acc')})}")
    return metrics


if __name__ == "__main__":
    run(main)
