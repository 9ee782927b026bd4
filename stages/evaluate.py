"""evaluate: what each representation keeps (AE z, VAE mu, PCA), on the test set, and
latent arithmetic with the AE and the VAE, judged by the pixel MLP.

It takes the PCA baseline from the train pixels' principal axes that preprocess wrote
(as many components as the AE's latent, or all those with variance when the latent is
larger) and writes every split's codes, which downstream
and ood read. Every error is per-pixel MSE on [0, 1].
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stages.core import models, paths, pca, plots
from stages.core.config import EvaluateConfig
from stages.core.data import SPLITS, Split, load_split, slug
from stages.core.device import batched, resolve_device
from stages.core.inputs import normalize
from stages.core.cli import run
from stages.core.io import fmt_metrics, load_arrays, save_arrays, save_figure, write_csv, write_json
from stages.core.params import ParamError, from_section, top_level
from stages.core.representations import (PCARepresentation, Representation, attribute_vector, interpolate,
                                         latent_grid, load_representations, mse_summary, per_image_mse,
                                         project_2d, walk)

MODELS = ("ae", "vae")
ANOMALY_PERCENTILE = 99  # the threshold: this percentile of the val images' per-image MSE
INTERPOLATION_PAIRS = ((0, 5), (1, 6), (2, 7), (3, 8))  # (class a, class b): the first test image of each
SAMPLES = 16  # decoded samples per model in samples_ae_vs_vae.png


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(EvaluateConfig, params, "evaluate")
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    splits = {s: load_split(root / paths.PROCESSED_DIR, s) for s in SPLITS}
    test, classes = splits["test"], splits["test"].classes
    pairs = class_pairs(cfg.arithmetic_pairs, classes)  # checked before any model is loaded
    classifier = models.load(root / paths.CLASSIFIER).to(device).eval()
    reps = load_representations(root, device, pca=False)
    # The baseline at the AE's size; for a code as large as the image or larger (the Keras
    # practice's 7x7x64 map) every component with variance: the pixels rotated, all but lossless.
    axes = load_arrays(root / paths.PROCESSED_DIR / pca.FILE, pca.KEYS)
    reps["pca"] = PCARepresentation.from_axes(axes, reps["ae"].dim)
    if reps["pca"].dim < reps["ae"].dim:
        print(f"evaluate: the AE's code has {reps['ae'].dim} numbers, more than the train images vary in: "
              f"PCA at all {reps['pca'].dim} components with variance on train is the baseline")
    reps["pca"].save(root / paths.PCA)
    results = [evaluate_one(rep, splits, root) for rep in reps.values()]
    report = {"mse": {r.name: r.summary for r in results},
              "anomalies": {r.name: anomalies(r, test) for r in results},
              # Per-pixel MSE favours dark images (few bright pixels to miss): its correlation
              # with each test image's mean intensity.
              "mse_brightness_r": {r.name: float(np.corrcoef(r.mse, test.images.reshape(len(r.mse), -1).mean(1))[0, 1])
                                   for r in results}}
    table = pd.DataFrame({"index": np.arange(len(test.labels)), "label": test.labels,
                          "class_name": [classes[i] for i in test.labels], **{r.name: r.mse for r in results}})
    write_csv(root / paths.PER_IMAGE_MSE, table)
    # The share of class-a test images that the pixel classifier calls b once their
    # codes are moved by v(a -> b): alpha 0 (the reconstruction) and alpha 1.
    vectors = {(r.name, a, b): attribute_vector(r.features["train"], splits["train"].labels, a, b)
               for r in results if r.name in MODELS for a, b in pairs}
    shares = {r.name: {f"{classes[a]} -> {classes[b]}": target_share(r, test, a, b, vectors[r.name, a, b],
                                                                        classifier, device)
                       for a, b in pairs} for r in results if r.name in MODELS}
    report["arithmetic"] = shares
    metrics = {"pca": {"test_mse": report["mse"]["pca"]["mse_mean"]},
               "arithmetic": {name: {"target_share": float(np.mean([s["alpha_1"] for s in by_pair.values()]))}
                              for name, by_pair in shares.items()}}
    write_json(root / paths.EVALUATE_METRICS, metrics)
    write_json(root / paths.EVALUATE_REPORT, report)
    # The folder is this stage's output as a whole: no figure of an earlier run (the
    # manifold of a 2-D latent) may survive a run that does not draw it.
    shutil.rmtree(root / paths.EVALUATE_PLOTS, ignore_errors=True)
    write_figures(root / paths.EVALUATE_PLOTS, cfg, results, test, vectors)
    print(f"evaluate: test MSE {fmt_metrics({r.name: r.summary['mse_mean'] for r in results})}, "
          f"arithmetic target share {fmt_metrics({k: v['target_share'] for k, v in metrics['arithmetic'].items()})} "
          f"({time.perf_counter() - start:.1f} s on {device})")
    return metrics


@dataclass
class Evaluated:
    """One representation: its codes of every split, and its test reconstructions and errors."""

    rep: Representation
    features: dict[str, np.ndarray]  # {split: (N, d)}
    recons: np.ndarray  # (N, 28, 28) on [0, 1]
    mse: np.ndarray  # (N,) per-pixel MSE on [0, 1], test
    val_mse: np.ndarray  # the same on val, for the anomaly threshold
    summary: dict  # mse_summary of ``mse``

    @property
    def anomaly_threshold(self) -> float:
        """The val images' 99th percentile of per-image MSE: about 1 % of in-distribution images lie above it."""
        return float(np.percentile(self.val_mse, ANOMALY_PERCENTILE))

    @property
    def name(self) -> str:
        return self.rep.name


def evaluate_one(rep: Representation, splits: dict[str, Split], root: Path) -> Evaluated:
    """Encode every split (saved for downstream), decode and score the test split."""
    features = {s: rep.encode(splits[s].images) for s in SPLITS}
    save_arrays(root / paths.FEATURES_DIR / f"{rep.name}.npz",
                **{f"x_{s}": features[s] for s in SPLITS}, **{f"y_{s}": splits[s].labels for s in SPLITS})
    test = splits["test"]
    recons = rep.decode(features["test"])
    mse = per_image_mse(test.images, recons)
    val_mse = per_image_mse(splits["val"].images, rep.decode(features["val"]))
    return Evaluated(rep, features, recons, mse, val_mse, mse_summary(mse, test.labels, test.classes))


def anomalies(r: Evaluated, test: Split) -> dict:
    """The test images whose per-image MSE is above the val images' 99th percentile: the
    threshold is chosen on val, so about 1 % of in-distribution test images are flagged."""
    threshold = r.anomaly_threshold
    flagged = r.mse > threshold
    by_class = {slug(c): {"flagged": int(flagged[test.labels == i].sum()),
                          "share": float(flagged[test.labels == i].mean())}
                for i, c in enumerate(test.classes) if (test.labels == i).any()}
    return {"threshold": threshold, "flagged": int(flagged.sum()), "share": float(flagged.mean()), "by_class": by_class}


def class_pairs(entries: tuple[str, ...], classes: list[str]) -> list[tuple[int, int]]:
    """(a, b) class indices of the ``a->b`` entries that name two classes of this dataset."""
    slugs = [slug(c) for c in classes]
    pairs = [(slugs.index(a), slugs.index(b)) for a, b in (e.split("->") for e in entries)
             if a in slugs and b in slugs]
    if not pairs:
        raise ParamError("evaluate.arithmetic_pairs", f"none of {list(entries)} names two classes of this "
                                                      f"dataset; its classes: {', '.join(slugs)}")
    return pairs


def target_share(r: Evaluated, test: Split, a: int, b: int, v: np.ndarray, classifier: torch.nn.Module,
                 device: torch.device) -> dict:
    """How often the pixel classifier says ``b`` for the class-``a`` test images decoded
    from z + alpha * v(a -> b), at alpha 0 (the plain reconstruction) and 1."""
    decoded = walk(r.rep, test.images[test.labels == a], v, np.array([0.0, 1.0]))  # (N, 2, 28, 28)
    images = np.round(decoded.reshape(-1, *decoded.shape[2:]) * 255).astype(np.uint8)
    x = normalize(images, classifier.cfg.input)  # as train_classifier fed it
    pred = batched(lambda xb: classifier(xb).argmax(1), x, device).numpy().reshape(-1, 2)
    return {"alpha_0": float((pred[:, 0] == b).mean()), "alpha_1": float((pred[:, 1] == b).mean()),
            "images": len(pred)}


def write_figures(out: Path, cfg: EvaluateConfig, results: list[Evaluated], test: Split,
                  vectors: dict[tuple[str, int, int], np.ndarray]) -> None:
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
        points, axis_labels = project_2d(r.features["test"], cfg.projection, cfg.seed)
        save_figure(out / f"latent_{r.name}.png",
                    plots.scatter(points, test.labels, classes, f"{r.name} latent, test set", axis_labels))
    rows = {}
    for ca, cb in INTERPOLATION_PAIRS:  # the first test image of class a to the first of class b
        if not ((test.labels == ca).any() and (test.labels == cb).any()):
            continue
        a, b = (int(np.flatnonzero(test.labels == c)[0]) for c in (ca, cb))
        for r in results:  # the real images at both ends
            strip = interpolate(r.rep, test.images[a], test.images[b], cfg.interpolation_steps)
            rows[f"{classes[ca]} -> {classes[cb]}, {r.name}"] = np.concatenate([originals[[a]], strip, originals[[b]]])
    save_figure(out / "interpolation.png", plots.rows_of_images(
        rows, "Interpolation between the codes of two test images (the real images at the ends)"))
    flagged = {}
    for r in results:
        idx = np.flatnonzero(r.mse > r.anomaly_threshold)[:12]
        flagged.update({f"{r.name}: flagged": originals[idx], f"{r.name}: its reconstruction": r.recons[idx]})
    save_figure(out / "anomalies.png", plots.rows_of_images(
        flagged, f"Test images above the val {ANOMALY_PERCENTILE}th percentile of per-image MSE (the first 12)"))
    for r in results:
        if r.name == "pca":
            continue
        if r.rep.dim != 2:
            print(f"evaluate: manifold_{r.name}.png skipped: the decoded latent plane needs a 2-D latent, "
                  f"this one has {r.rep.dim} dims (latent_{r.name}.png shows its {cfg.projection} projection)")
            continue
        z, z1, z2 = latent_grid(r.features["test"], cfg.grid_size)
        save_figure(out / f"manifold_{r.name}.png", plots.manifold(
            r.rep.decode(z), z1, z2, f"{r.name}: images decoded over the latent plane, test codes on top",
            points=r.features["test"], labels=test.labels, classes=classes))
    by_name = {r.name: r for r in results}
    rng = np.random.default_rng(cfg.seed)
    codes = by_name["ae"].features["train"]
    box = rng.uniform(codes.min(0), codes.max(0), size=(SAMPLES, codes.shape[1])).astype(np.float32)
    prior = rng.standard_normal((SAMPLES, by_name["vae"].rep.dim)).astype(np.float32)
    save_figure(out / "samples_ae_vs_vae.png", plots.rows_of_images(
        {"AE, z ~ U(box of train codes)": by_name["ae"].rep.decode(box),
         "VAE, z ~ N(0, I)": by_name["vae"].rep.decode(prior)},
        "Decoded samples: the plain AE's latent has gaps the box does not know of; the VAE's prior is what it trained on"))
    alphas = np.array(cfg.arithmetic_alphas, dtype=np.float32)
    for r in results:
        if r.name not in MODELS:
            continue
        rows = {}
        for (name, a, b), v in vectors.items():
            if name != r.name:
                continue
            strips = walk(r.rep, test.images[test.labels == a][: cfg.arithmetic_images], v, alphas)
            rows.update({f"{classes[a]} -> {classes[b]} #{i + 1}": strip for i, strip in enumerate(strips)})
        save_figure(out / f"arithmetic_{r.name}.png", plots.rows_of_images(
            rows, f"{r.name}: z + alpha * (mean z of b - mean z of a), alpha = {', '.join(f'{x:g}' for x in alphas)}"))


if __name__ == "__main__":
    run(main, stage=True)
