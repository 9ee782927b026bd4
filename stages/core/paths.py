"""Every file a stage writes, by stage, written once: the stages take their paths from
here, dvc.yaml lists the same ones (tests hold the two equal), and an error about a
damaged or missing file names the stage that rebuilds it. Relative to the repository.
"""
from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")

PROCESSED_DIR = Path("data/processed")
DATA_REPORT = Path("reports/data.json")
DATA_PLOTS = Path("plots/data")

CLASSIFIER = Path("models/classifier.pt")
CLASSIFIER_METRICS = Path("metrics/train_classifier.json")
PIXELS_REPORT = Path("reports/train_classifier.json")  # its pixel row is downstream's baseline
PIXEL_PREDICTIONS = Path("data/eval/pixel_test_predictions.npz")  # downstream pairs its probes with these
CLASSIFIER_PLOTS = Path("plots/train_classifier")

AE = Path("models/ae.pt")
AE_METRICS = Path("metrics/train_ae.json")
AE_REPORT = Path("reports/train_ae.json")
AE_PLOTS = Path("plots/train_ae")

VAE = Path("models/vae.pt")
VAE_BOUNDS = Path("data/eval/vae_test_bounds.npz")
VAE_METRICS = Path("metrics/train_vae.json")
VAE_REPORT = Path("reports/train_vae.json")
VAE_PLOTS = Path("plots/train_vae")

PCA = Path("models/pca.npz")
PER_IMAGE_MSE = Path("data/eval/per_image_mse.csv")
FEATURES_DIR = Path("data/features")
EVALUATE_METRICS = Path("metrics/evaluate.json")
EVALUATE_REPORT = Path("reports/evaluate.json")
EVALUATE_PLOTS = Path("plots/evaluate")

DOWNSTREAM_METRICS = Path("metrics/downstream.json")
DOWNSTREAM_REPORT = Path("reports/downstream.json")
DOWNSTREAM_PLOTS = Path("plots/downstream")

OOD_METRICS = Path("metrics/ood.json")
OOD_REPORT = Path("reports/ood.json")
OOD_PLOTS = Path("plots/ood")

# The table: each stage's files, as dvc.yaml's outs and metrics list them (a folder
# here stands for the files dvc.yaml lists in it).
WRITES = {
    "download": (RAW_DIR,),
    "preprocess": (PROCESSED_DIR, DATA_REPORT, DATA_PLOTS),
    "train_classifier": (CLASSIFIER, CLASSIFIER_METRICS, PIXELS_REPORT, PIXEL_PREDICTIONS, CLASSIFIER_PLOTS),
    "train_ae": (AE, AE_METRICS, AE_REPORT, AE_PLOTS),
    "train_vae": (VAE, VAE_BOUNDS, VAE_METRICS, VAE_REPORT, VAE_PLOTS),
    "evaluate": (PCA, PER_IMAGE_MSE, FEATURES_DIR, EVALUATE_METRICS, EVALUATE_REPORT, EVALUATE_PLOTS),
    "downstream": (DOWNSTREAM_METRICS, DOWNSTREAM_REPORT, DOWNSTREAM_PLOTS),
    "ood": (OOD_METRICS, OOD_REPORT, OOD_PLOTS),
}
WRITTEN_BY = {path: stage for stage, outs in WRITES.items() for path in outs}


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
