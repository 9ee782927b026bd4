"""preprocess: the IDX files into train/val/test arrays, plus a dataset summary.

``val`` is a stratified, seeded slice of the official training set; the official test
set is kept whole. Each split records its dataset and class names, for later stages;
the train split's principal axes are written beside them (stages/core/pca.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from stages.core import paths, pca, plots
from stages.core.config import DataConfig
from stages.core.data import SPLITS, class_names, read_raw, slug
from stages.core.cli import run
from stages.core.io import save_arrays, save_figure, write_json
from stages.core.params import from_section


def split(images: np.ndarray, labels: np.ndarray, cfg: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Carve a stratified, seeded val set out of the training set; keep the original order."""
    train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=cfg.val_fraction,
                                          stratify=labels, random_state=cfg.seed)
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return {"train": (images[train_idx], labels[train_idx]), "val": (images[val_idx], labels[val_idx])}


def summary(splits: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str]) -> dict:
    metrics = {}
    for name, (images, labels) in splits.items():
        metrics[f"count_{name}"] = int(len(labels))
        counts = np.bincount(labels, minlength=len(classes))
        metrics.update({f"count_{name}_{slug(c)}": int(n) for c, n in zip(classes, counts)})
    train = splits["train"][0] / 255.0
    metrics["pixel_mean_train"] = round(float(train.mean()), 6)
    metrics["pixel_std_train"] = round(float(train.std()), 6)
    return metrics


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(DataConfig, params, "data")
    raw = root / paths.RAW_DIR / cfg.dataset
    classes = class_names(cfg.dataset)
    images, labels = read_raw(raw, "train")
    splits = split(images, labels, cfg)
    splits["test"] = read_raw(raw, "t10k")
    for name in SPLITS:
        save_arrays(root / paths.PROCESSED_DIR / f"{name}.npz", images=splits[name][0], labels=splits[name][1],
                    classes=np.array(classes), dataset=np.array(cfg.dataset))
    # Every latent size's PCA baseline keeps the leading ones (evaluate): computed once here.
    save_arrays(root / paths.PROCESSED_DIR / pca.FILE, **pca.principal_axes(splits["train"][0]))

    metrics = summary(splits, classes)
    write_json(root / paths.DATA_REPORT, metrics)
    train_images, train_labels = splits["train"]
    first = [int(np.flatnonzero(train_labels == c)[0]) for c in np.unique(train_labels)]  # one per class
    save_figure(root / paths.DATA_PLOTS / "mosaic.png",
                plots.image_grid(train_images[first] / 255.0, [classes[train_labels[i]] for i in first], ncols=5))
    save_figure(root / paths.DATA_PLOTS / "pixel_histogram.png",
                plots.histograms({"train": train_images.ravel() / 255.0}, "pixel intensity [0, 1]",
                                 "Pixel intensities (train)", bins=50, log=True))
    counts = pd.DataFrame({name: np.bincount(splits[name][1], minlength=len(classes)) for name in SPLITS}, index=classes)
    save_figure(root / paths.DATA_PLOTS / "class_distribution.png", plots.bars(counts, "Images per class", "images"))
    print(f"preprocess: {cfg.dataset}: " + " / ".join(f"{n} {metrics[f'count_{n}']}" for n in SPLITS))
    return metrics


if __name__ == "__main__":
    run(main, stage=True)
