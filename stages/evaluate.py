"""evaluate: what each representation keeps, on the test set (AE z, VAE mu, PCA).

Reads models/ae.pt, models/vae.pt and data/processed/. Writes
data/eval/per_image_mse.csv (one row per test image, one MSE column per representation),
data/features/<repr>.npz (train/val/test features and labels, for downstream),
metrics/evaluate.json (the headline: PCA's test MSE, the baseline beside the AE's and
the VAE's in their own stages), reports/evaluate.json (MSE mean/median/min/max/p95 and
per-class means of all three) and the figures in plots/evaluate/. Every error is
per-pixel MSE on the [0, 1] scale.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.core import plots
from stages.core.data import SPLITS, Split, load_split
from stages.core.device import resolve_device
from stages.core.evaluation import (ModelRepresentation, PCARepresentation, Representation, interpolate,
                                    latent_grid, mse_summary, per_image_mse, project_2d)
from stages.core.io import fmt_metrics, load_checkpoint, save_arrays, save_figure, write_csv, write_json
from stages.core.models import from_checkpoint
from stages.core.params import check, check_choice, from_section, run, top_level

PROCESSED_DIR = Path("data/processed")
MODELS = {"ae": Path("models/ae.pt"), "vae": Path("models/vae.pt")}
MSE_CSV = Path("data/eval/per_image_mse.csv")
FEATURES_DIR = Path("data/features")
METRICS = Path("metrics/evaluate.json")
REPORT = Path("reports/evaluate.json")
PLOTS_DIR = Path("plots/evaluate")


@dataclass(frozen=True)
class EvaluateConfig:
    projection: str  # 2-D view of latents with more than 2 dims: pca or tsne (slow)
    n_extremes: int  # best and worst reconstructions shown per representation
    grid_size: int  # decoded latent-plane grid, n x n, when latent_dim == 2
    interpolation_steps: int
    seed: int  # PCA's randomized solver, the 2-D projection

    def __post_init__(self) -> None:
        check_choice(self.projection, ("pca", "tsne"), "projection")
        for key in ("n_extremes", "grid_size", "interpolation_steps"):
            check(getattr(self, key) >= 2, key, f"must be >= 2, got {getattr(self, key)}")


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(EvaluateConfig, params, "evaluate")
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    splits = {s: load_split(root / PROCESSED_DIR, s) for s in SPLITS}
    test, classes = splits["test"], splits["test"].classes
    reps = [ModelRepresentation(name, from_checkpoint(load_checkpoint(root / path)), device)
            for name, path in MODELS.items()]
    reps.append(PCARepresentation(splits["train"].images, reps[0].dim, cfg.seed))

    results = [evaluate_one(rep, splits, root) for rep in reps]
    report = {r.name: r.summary for r in results}
    table = pd.DataFrame({"index": np.arange(len(test.labels)), "label": test.labels,
                          "class_name": [classes[i] for i in test.labels], **{r.name: r.mse for r in results}})
    write_csv(root / MSE_CSV, table)
    metrics = {"pca": {"test_mse": report["pca"]["mse_mean"]}}
    write_json(root / METRICS, metrics)
    write_json(root / REPORT, report)
    # The folder is this stage's output as a whole: no figure of an earlier run (the
    # manifold of a 2-D latent) may survive a run that does not draw it.
    shutil.rmtree(root / PLOTS_DIR, ignore_errors=True)
    write_figures(root / PLOTS_DIR, cfg, results, test)
    print(f"evaluate: test MSE {fmt_metrics({name: r['mse_mean'] for name, r in report.items()})} "
          f"({time.perf_counter() - start:.1f} s on {device})")
    return metrics


@dataclass
class Evaluated:
    """One representation on the test set: its codes, reconstructions and errors."""

    rep: Representation
    codes: np.ndarray  # (N, d)
    recons: np.ndarray  # (N, 28, 28) on [0, 1]
    mse: np.ndarray  # (N,) per-pixel MSE on [0, 1]
    summary: dict  # mse_summary of ``mse``

    @property
    def name(self) -> str:
        return self.rep.name


def evaluate_one(rep: Representation, splits: dict[str, Split], root: Path) -> Evaluated:
    """Encode every split (saved for downstream), decode and score the test split."""
    features = {s: rep.encode(splits[s].images) for s in SPLITS}
    save_arrays(root / FEATURES_DIR / f"{rep.name}.npz",
                **{f"x_{s}": features[s] for s in SPLITS}, **{f"y_{s}": splits[s].labels for s in SPLITS})
    test = splits["test"]
    recons = rep.decode(features["test"])
    mse = per_image_mse(test.images, recons)
    return Evaluated(rep, features["test"], recons, mse, mse_summary(mse, test.labels, test.classes))


def write_figures(out: Path, cfg: EvaluateConfig, results: list[Evaluated], test: Split) -> None:
    classes, originals = test.classes, test.images / 255.0
    mse = {r.name: r.mse for r in results}
    save_figure(out / "mse_histogram.png",
                plots.histograms(mse, "per-image MSE on [0, 1] (test)", "Reconstruction error per image"))
    show = slice(0, 12)
    save_figure(out / "reconstructions.png", plots.rows_of_images(
        {"original": originals[show], **{r.name: r.recons[show] for r in results}}, "Test reconstructions"))
    for r in results:
        order = np.argsort(r.mse, kind="stable")
        best, worst = order[: cfg.n_extremes], order[::-1][: cfg.n_extremes]
        save_figure(out / f"extremes_{r.name}.png", plots.rows_of_images(
            {"best": originals[best], f"{r.name} (best)": r.recons[best],
             "worst": originals[worst], f"{r.name} (worst)": r.recons[worst]},
            f"{r.name}: lowest and highest per-image MSE (worst: {r.mse[worst[0]]:.4f})"))
        points, axis_labels = project_2d(r.codes, cfg.projection, cfg.seed)
        save_figure(out / f"latent_{r.name}.png",
                    plots.scatter(points, test.labels, classes, f"{r.name} latent, test set", axis_labels))
    # Two test images of different classes: the first image, and the first of another class.
    a = 0
    b = int(np.flatnonzero(test.labels != test.labels[a])[0])
    strips = {r.name: interpolate(r.rep, test.images[a], test.images[b], cfg.interpolation_steps) for r in results}
    save_figure(out / "interpolation.png", plots.rows_of_images(
        strips, f"Interpolation: {classes[test.labels[a]]} -> {classes[test.labels[b]]}"))
    for r in results:
        if r.rep.dim == 2 and r.name != "pca":
            z, z1, z2 = latent_grid(r.codes, cfg.grid_size)
            save_figure(out / f"manifold_{r.name}.png",
                        plots.manifold(r.rep.decode(z), z1, z2, f"{r.name}: images decoded over the latent plane"))


if __name__ == "__main__":
    run(main)
