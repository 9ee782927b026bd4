"""downstream: are the latents as useful as raw pixels? The same classifiers on each.

Every representation gets the pixel baselines' two classifiers with the same params (the
``logreg`` and ``train_classifier`` sections), on codes standardized with train
statistics, and k-NN on the codes as they are; the pixel row is train_classifier's.
Test is reported for the val-selected model.

Standardizing scales every unit of the VAE's mu to unit variance, inactive ones too (those
the encoder barely moves, models.ACTIVE_VARIANCE). So when some units are inactive on the
train split, ``vae_active``, mu's active units alone, is probed beside it (not a candidate
for the best latent, which stays one of the three codes). Every two representations'
probes are paired image by image on the test set (probes.test_image_differences): how
far each difference would move if only the test images were drawn again, and McNemar's p.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from stages.core import paths, plots
from stages.core.config import ClassifierConfig, LogregConfig
from stages.core.data import SPLITS, DataError, load_split
from stages.core.device import resolve_device
from stages.core.cli import run
from stages.core.io import fmt_metrics, load_arrays, read_json, save_figure, write_csv, write_json
from stages.core.models import ACTIVE_VARIANCE
from stages.core.params import from_section, top_level
from stages.core.probes import confusion_counts, paired_accuracy, probe, test_image_differences

LATENTS = ("ae", "vae", "pca")


def load_latents(root: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], list[str]]:
    """{repr: {split: features}}, {split: labels}, class names."""
    splits = {s: load_split(root / paths.PROCESSED_DIR, s) for s in SPLITS}
    features = {}
    for name in LATENTS:
        arrays = load_arrays(root / paths.FEATURES_DIR / f"{name}.npz", [f"{k}_{s}" for k in "xy" for s in SPLITS])
        features[name] = {s: arrays[f"x_{s}"] for s in SPLITS}
        for s in SPLITS:
            if not np.array_equal(arrays[f"y_{s}"], splits[s].labels):
                raise DataError(f"{paths.FEATURES_DIR / name}.npz: {s} labels differ from {paths.PROCESSED_DIR}; "
                                "rerun the evaluate stage (`dvc repro evaluate`)")
    return features, {s: splits[s].labels for s in SPLITS}, splits["test"].classes


def active_units(vae: dict[str, np.ndarray]) -> np.ndarray:
    """The indices of mu's units whose variance over the train split exceeds ACTIVE_VARIANCE."""
    return np.flatnonzero(vae["train"].astype(np.float64).var(axis=0) > ACTIVE_VARIANCE)


def main(params: dict, root: Path = Path(".")) -> dict:
    from_section(LogregConfig, params, "logreg")  # checked before any work
    from_section(ClassifierConfig, params, "train_classifier")
    device = resolve_device(top_level(params, "device"))
    pixels = read_json(root / paths.PIXELS_REPORT).get("pixels")
    if not isinstance(pixels, dict) or not {"mlp", "logreg"} <= set(pixels):
        raise DataError(f"{root / paths.PIXELS_REPORT} lacks the pixel row; rebuild it with "
                        "`dvc repro --force train_classifier`")
    pixel_pred = load_arrays(root / paths.PIXEL_PREDICTIONS, ("mlp", "logreg"))
    features, labels, classes = load_latents(root)
    if len(pixel_pred["mlp"]) != len(labels["test"]):
        raise DataError(f"{paths.PIXEL_PREDICTIONS} holds {len(pixel_pred['mlp'])} test predictions, the test split "
                        f"{len(labels['test'])}; rebuild it with `dvc repro --force train_classifier`")
    active = active_units(features["vae"])
    if 0 < len(active) < features["vae"]["train"].shape[1]:
        features["vae_active"] = {s: x[:, active] for s, x in features["vae"].items()}
    start = time.perf_counter()
    probes = probe(features, labels, params, len(classes), "downstream", device)
    for name, probed in probes.items():
        print(f"downstream: {name} (d={probed.dim}): {probed.summary()}")
    print(f"downstream: {len(probes)} representations probed in {time.perf_counter() - start:.1f} s")
    report = {"pixels": pixels, **{name: probe.record() for name, probe in probes.items()},
              "vae_active_units": {"train_variance_above": ACTIVE_VARIANCE, "units": active.tolist(),
                                   "of": features["vae"]["train"].shape[1]}}

    table = pd.DataFrame([{"representation": name, "classifier": clf, "val_acc": r[clf]["val_acc"],
                           "test_acc": r[clf]["test_acc"]} for name, r in report.items() if name in ("pixels", *probes)
                          for clf in ("logreg", "mlp")])
    table["model"] = table["representation"] + " " + table["classifier"]
    latent = table[table["representation"].isin(LATENTS)]
    best = latent.loc[latent["val_acc"].idxmax()]  # chosen on val, like everything else
    pred = probes[best["representation"]].test_pred(best["classifier"])
    report["best_latent"] = best["model"]
    preds = {**{name: probed.test_preds() for name, probed in probes.items()},
             "pixels": {c: pixel_pred[c] for c in ("logreg", "mlp")}}
    report["test_images"] = {"n": len(labels["test"]), "differences": {
        **test_image_differences(labels["test"], preds),
        "best-pixels": {best["classifier"]: paired_accuracy(labels["test"], pred, pixel_pred[best["classifier"]])}}}
    metrics = {"downstream": {
        **{name: {"logreg_test_acc": probe.logreg.test_acc, "mlp_test_acc": probe.mlp["test_acc"]}
           for name, probe in probes.items()},
        "best_latent_test_acc": float(best["test_acc"]),
        # the question the pipeline asks, in one number: how far the best latent probe is
        # from the same classifier on all pixels (negative: below the pixels)
        "best_latent_minus_pixels": float(best["test_acc"]) - pixels[best["classifier"]]["test_acc"],
    }}

    write_json(root / paths.DOWNSTREAM_METRICS, metrics)
    write_json(root / paths.DOWNSTREAM_REPORT, report)
    write_csv(root / paths.DOWNSTREAM_PLOTS / "accuracy.csv", table[["model", "representation", "classifier", "val_acc", "test_acc"]])
    write_csv(root / paths.DOWNSTREAM_PLOTS / "confusion.csv", confusion_counts(labels["test"], pred, classes))
    save_figure(root / paths.DOWNSTREAM_PLOTS / "accuracy.png", plots.bars(
        table.pivot(index="representation", columns="classifier", values="test_acc").loc[["pixels", *LATENTS]],
        "Test accuracy of each classifier on each representation", "test accuracy"))
    save_figure(root / paths.DOWNSTREAM_PLOTS / "confusion.png",
                plots.confusion(labels["test"], pred, classes, f"Best latent classifier: {best['model']} (test)"))
    headline = {k: v for k, v in metrics["downstream"].items() if not isinstance(v, dict)}
    gap = report["test_images"]["differences"]["best-pixels"][best["classifier"]]
    print(f"downstream: best latent {best['model']}: {fmt_metrics(headline)} (over the test images: se "
          f"{gap['se']:.4f}, McNemar p {gap['mcnemar_p']:.2g})")
    return metrics


if __name__ == "__main__":
    run(main, stage=True)
