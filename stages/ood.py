"""ood: does the model know what it has not seen? The other dataset's test images
(MNIST for Fashion-MNIST, and the reverse) against this one's.

Scores, higher meaning stranger (core/ood_scores.py): each representation's per-image
MSE; with the Bernoulli decoder, the VAE's IWAE bound on -log p(x), that bound in bits
minus the image's PNG length (Serra et al., 2020), and minus the PNG length alone, which
shows how much of the corrected score is the PNG's. Each AUROC, and each difference of
two in PAIRS, has the interval the scored images' own sampling gives it (DeLong). The bound of this dataset's images
is train_vae's, read back; only the other dataset's is computed here, with the same
k and seed. An AUROC below 0.5 is a finding, not a bug (Nalisnick et al., 2019).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from stages.core import paths, plots
from stages.core.config import OODConfig
from stages.core.data import DATASETS, DataError, load_split, read_raw
from stages.core.device import resolve_device
from stages.core.inputs import normalize
from stages.core.cli import run
from stages.core.io import fmt_metrics, load_arrays, save_figure, write_csv, write_json
from stages.core.likelihood import bounds_per_image
from stages.core.ood_scores import auroc, auroc_noise, nats_to_bits, png_bits, roc
from stages.core.params import from_section, top_level
from stages.core.representations import load_representations, per_image_mse

SCORE_LABELS = {  # score -> (what it is, its unit): the histograms' titles and x labels
    "ae_mse": ("AE reconstruction error", "MSE per pixel on [0, 1]"),
    "vae_mse": ("VAE reconstruction error (decoding mu)", "MSE per pixel on [0, 1]"),
    "pca_mse": ("PCA reconstruction error", "MSE per pixel on [0, 1]"),
    "vae_nll": ("VAE: IWAE bound on -log p(x)", "nats per image"),
    "vae_nll_minus_png": ("VAE bound minus PNG length (Serra et al.)", "bits per image"),
    "minus_png": ("minus PNG length alone", "-bits per image"),
}
# The differences of two scores' AUROCs (on the same images) the report gives an interval.
PAIRS = [("vae_nll_minus_png", "vae_nll"), ("ae_mse", "vae_nll"), ("vae_nll_minus_png", "minus_png")]


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(OODConfig, params, "ood")
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    test = load_split(root / paths.PROCESSED_DIR, "test")
    dataset = test.dataset
    other = next(d for d in DATASETS if d != dataset)
    inside = test.images[: cfg.images]
    outside = read_raw(root / paths.RAW_DIR / other, "t10k")[0][: cfg.images]
    sets = {dataset: inside, other: outside}

    reps = load_representations(root, device)
    scores = {f"{name}_mse": {s: per_image_mse(images, rep.decode(rep.encode(images))) for s, images in sets.items()}
              for name, rep in reps.items()}
    vae = reps["vae"].model
    if vae.cfg.loss == "bce":  # a Bernoulli likelihood: the bound is in nats
        bounds = load_arrays(root / paths.VAE_BOUNDS, ("iwae_nll", "k", "seed"))
        if len(bounds["iwae_nll"]) < len(inside):
            raise DataError(f"ood.images is {cfg.images} but train_vae bounded only the first "
                            f"{len(bounds['iwae_nll'])} test images ({paths.VAE_BOUNDS}); set ood.images <= "
                            f"train_vae.iwae_images")
        k, seed = int(bounds["k"]), int(bounds["seed"])
        nll = {dataset: bounds["iwae_nll"][: len(inside)],
               other: bounds_per_image(vae, normalize(outside, vae.cfg.input), k, seed, device)[:, 0].numpy()}
        scores["vae_nll"] = nll
        png = {name: png_bits(images) for name, images in sets.items()}
        scores["vae_nll_minus_png"] = {name: nats_to_bits(nll[name]) - png[name] for name in sets}
        scores["minus_png"] = {name: -png[name] for name in sets}

    aurocs = {score: auroc(s[dataset], s[other]) for score, s in scores.items()}
    metrics = {"ood": {"auroc": aurocs}}
    report = {"in_distribution": dataset, "out_of_distribution": other, "images": len(inside),
              "auroc": aurocs,
              "test_images": auroc_noise({k: (s[dataset], s[other]) for k, s in scores.items()}, PAIRS),
              "mean_score": {score: {name: float(np.mean(v)) for name, v in s.items()}
                                              for score, s in scores.items()}}
    write_json(root / paths.OOD_METRICS, metrics)
    write_json(root / paths.OOD_REPORT, report)
    for score, s in scores.items():
        write_csv(root / paths.OOD_PLOTS / "roc" / f"{score}.csv", roc(s[dataset], s[other]))
    save_figure(root / paths.OOD_PLOTS / "histograms.png", plots.score_histograms(
        scores, SCORE_LABELS, f"{dataset} test (in) vs {other} test (out), first {len(inside)} images each"))
    print(f"ood: {dataset} vs {other}, AUROC {fmt_metrics(aurocs)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main, stage=True)
