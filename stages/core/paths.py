"""The files one stage writes and another reads, each with the stage that writes it.

A damaged or missing one is named in errors with the command that rebuilds it.
"""
from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")
CLASSIFIER = Path("models/classifier.pt")
AE = Path("models/ae.pt")
VAE = Path("models/vae.pt")
PCA = Path("models/pca.npz")
FEATURES_DIR = Path("data/features")
VAE_BOUNDS = Path("data/eval/vae_test_bounds.npz")
PIXELS_REPORT = Path("reports/train_classifier.json")

WRITTEN_BY = {RAW_DIR: "download", PROCESSED_DIR: "preprocess", CLASSIFIER: "train_classifier",
              PIXELS_REPORT: "train_classifier", AE: "train_ae", VAE: "train_vae", VAE_BOUNDS: "train_vae",
              PCA: "evaluate", FEATURES_DIR: "evaluate"}


def writer(path: Path) -> str | None:
    """The stage that writes ``path`` (under any root, or inside an output folder), if one of these."""
    parts = Path(path).parts
    for out, stage in WRITTEN_BY.items():
        n = len(out.parts)
        if any(parts[i : i + n] == out.parts for i in range(len(parts) - n + 1)):
            return stage
    # a file of that name elsewhere (a copy, a test's folder): the stage that writes its name
    return next((stage for out, stage in WRITTEN_BY.items() if out.suffix and out.name == Path(path).name), None)


def rebuild_hint(path: Path) -> str:
    stage = writer(path)
    return f"`dvc repro --force {stage}`" if stage else "`dvc repro --force` the stage that writes it"
