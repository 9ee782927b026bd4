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
from stages.core.evaluation import (ModelRepresentation, PCARepresentation, Representation, interpolate,
                                    latent_grid, mse_summary, per_image_mse, project_2d)
from stages.core.io import fmt_metrics, load_checkpoint, save_arrays, save_figure, write_csv, write_json
from stages.core.models import from_checkpoint
from stages.core.params import check, check_choice, from_section, run
from stages.core.training import resolve_device

PROCESSED_DIR = Path("data/processed")
MODELS = {"ae": Path("models/ae.pt"), "vae": Path("models/vae.pt")}
MSE_CSV = Path("data/eval/per_image_mse.csv")
FEATURES_DIR = Path("data/features")
METRICS = Path("metrics/evaluate.json")
REPORT = Path("reports/evaluate.json")
PLOTS_DIR = Path("plots/evaluate")


@dataclass(frozen=True)
class EvaluateConfig:
    projection: str = "pca"  # 2-D view of latents with more than 2 dims: pca or tsne (slow)
    n_extremes: int = 8  # best and worst reconstructions shown per representation
    grid_size: int = 15  # decoded latent-plane grid, n x n, when latent_dim == 2
    interpolation_steps: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.projection, ("pca", "tsne"), "projection")
        for key in ("n_extremes", "grid_size", "interpolation_steps"):
            check(getattr(self, key) >= 2, key, f"must be >= 2, got {getattr(self, key)}")


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(EvaluateConfig, params.get("evaluate"), "evaluate")
    device = resolve_device(params.get("device", "auto"))
    start = time.perf_counter()
    splits = {s: load_split(root / PROCESSED_DIR, s) for s in SPLITS}
    test, classes = splits["test"], splits["test"].classes
    reps = [ModelRepresentation(name, from_checkpoint(load_checkpoint(root / path)), device)
            for name, path in MODELS.items()]
    reps.append(PCARepresentation(splits["train"].images, reps[0].dim, cfg.seed))

    report, mse, recons, codes = {}, {}, {}, {}
    for rep in reps:
        features = {s: rep.encode(splits[s].images) for s in SPLITS}
        save_arrays(root / FEATURES_DIR / f"{rep.name}.npz",
                    **{f"x_{s}": features[s] for s in SPLITS}, **{f"y_{s}": splits[s].labels for s in SPLITS})
        codes[rep.name] = features["test"]
        recons[rep.name] = rep.decode(features["test"])
        mse[rep.name] = per_image_mse(test.images, recons[rep.name])
        report[rep.name] = mse_summary(mse[rep.name], test.labels, classes)

    table = pd.DataFrame({"index": np.arange(len(test.labels)), "label": test.labels,
                          "class_name": [classes[i] for i in test.labels],
                          **{name: m for name, m in mse.items()}})
    write_csv(root / MSE_CSV, table)
    metrics = {"pca": {"test_mse": report["pca"]["mse_mean"]}}
    write_json(root / METRICS, metrics)
    write_json(root / REPORT, report)
    # The folder is this stage's output as a whole: no figure of an earlier run (the
    # manifold of a 2-D latent) may survive a run that does not draw it.
    shutil.rmtree(root / PLOTS_DIR, ignore_errors=True)
    write_figures(root / PLOTS_DIR, cfg, reps, test, mse, recons, codes)
    print(f"evaluate: test MSE {fmt_metrics({name: r['mse_mean'] for name, r in report.items()})} "
          f"({time.perf_counter() - start:.1f} s on {device})")
    return metrics


def write_figures(out: Path, cfg: EvaluateConfig, reps: list[Representation], test: Split,
                  mse: dict[str, np.ndarray], recons: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> None:
    classes, originals = test.classes, test.images / 255.0
    save_figure(out / "mse_histogram.png",
                plots.histograms(mse, "per-image MSE on [0, 1] (test)", "Reconstruction error per image"))
    show = slice(0, 12)
    save_figure(out / "reconstructions.png", plots.rows_of_images(
        {"original": originals[show], **{name: r[show] for name, r in recons.items()}}, "Test reconstructions"))
    for name, m in mse.items():
        order = np.argsort(m, kind="stable")
        best, worst = order[: cfg.n_extremes], order[::-1][: cfg.n_extremes]
        save_figure(out / f"extremes_{name}.png", plots.rows_of_images(
            {"best": originals[best], f"{name} (best)": recons[name][best],
             "worst": originals[worst], f"{name} (worst)": recons[name][worst]},
            f"{name}: lowest and highest per-image MSE (worst: {m[worst[0]]:.4f})"))
        points, axis_labels = project_2d(codes[name], cfg.projection, cfg.seed)
        save_figure(out / f"latent_{name}.png",
                    plots.scatter(points, test.labels, classes, f"{name} latent, test set", axis_labels))
    # Two test images of different classes: the first image, and the first of another class.
    a = 0
    b = int(np.flatnonzero(test.labels != test.labels[a])[0])
    strips = {rep.name: interpolate(rep, test.images[a], test.images[b], cfg.interpolation_steps) for rep in reps}
    save_figure(out / "interpolation.png", plots.rows_of_images(
        strips, f"Interpolation: {classes[test.labels[a]]} -> {classes[test.labels[b]]}"))
    for rep in reps:
        if rep.dim == 2 and rep.name != "pca":
            z, z1, z2 = latent_grid(codes[rep.name], cfg.grid_size)
            save_figure(out / f"manifold_{rep.name}.png",
                        plots.manifold(rep.decode(z), z1, z2, f"{rep.name}: images decoded over the latent plane"))


if __name__ == "__main__":
    run(main)
