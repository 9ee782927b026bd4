"""ood: does the model know what it has not seen? The other dataset's test images against
this one's.

Reads models/ae.pt, models/vae.pt, data/processed/ (train images for PCA, the test set)
and the other dataset's official test images in data/raw/ (MNIST for a model trained on
Fashion-MNIST, and the reverse). Scores the first ``ood.images`` test images of each
set, higher meaning stranger (stages/core/ood.py): per-image reconstruction MSE of the
AE, the VAE (decoding mu) and PCA; the VAE's IWAE bound on -log p(x) (train_vae's
``iwae_k`` samples; Bernoulli decoder only); and that bound in bits minus the image's
PNG length in bits (Serrà et al., 2020), and minus the PNG length alone: the
Bernoulli bound on grey levels is no code length of the 8-bit image (a few hundred
bits against a PNG's thousands), so the corrected score is mostly the PNG term, and
this reference shows how much. Writes metrics/ood.json (AUROC of each score,
this dataset's test images as negatives), reports/ood.json (the datasets, image counts,
mean scores per set) and plots/ood/: roc/<score>.csv (for `dvc plots`) and
histograms.png. An AUROC below 0.5 is a finding, not a bug: the score ranks the other
dataset as more typical than this one (Nalisnick et al., 2019).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages import train_vae
from stages.core import plots
from stages.core.data import DATASETS, DataConfig, load_split, normalize, read_raw
from stages.core.device import resolve_device
from stages.core.evaluation import ModelRepresentation, PCARepresentation, per_image_mse
from stages.core.io import fmt_metrics, load_checkpoint, save_figure, write_csv, write_json
from stages.core.likelihood import bounds_per_image
from stages.core.models import from_checkpoint
from stages.core.ood import auroc, nats_to_bits, png_bits, roc
from stages.core.params import check, from_section, run, top_level

PROCESSED_DIR = Path("data/processed")
RAW_DIR = Path("data/raw")
MODELS = {"ae": Path("models/ae.pt"), "vae": Path("models/vae.pt")}
METRICS = Path("metrics/ood.json")
REPORT = Path("reports/ood.json")
PLOTS_DIR = Path("plots/ood")


@dataclass(frozen=True)
class OODConfig:
    """The ``ood`` section."""

    images: int  # the first this many test images of each dataset are scored

    def __post_init__(self) -> None:
        check(self.images >= 2, "images", f"must be >= 2, got {self.images}")


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(OODConfig, params, "ood")
    dataset = from_section(DataConfig, params, "data").dataset
    _, vae_cfg = train_vae.build(params)  # its iwae_k and seed, checked as train_vae checks them
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    other = next(d for d in DATASETS if d != dataset)
    inside = load_split(root / PROCESSED_DIR, "test").images[: cfg.images]
    outside = read_raw(root / RAW_DIR / other, "t10k")[0][: cfg.images]
    sets = {dataset: inside, other: outside}

    reps = [ModelRepresentation(name, from_checkpoint(load_checkpoint(root / path)), device)
            for name, path in MODELS.items()]
    reps.append(PCARepresentation(load_split(root / PROCESSED_DIR, "train").images, reps[0].dim))
    scores = {f"{rep.name}_mse": {name: per_image_mse(images, rep.decode(rep.encode(images)))
                                  for name, images in sets.items()} for rep in reps}
    vae = reps[1].model
    if vae.loss_kind == "bce":  # a Bernoulli likelihood: the bound is in nats
        nll = {name: bounds_per_image(vae, normalize(images, vae.cfg.input), vae_cfg.iwae_k, vae_cfg.seed,
                                      device)[:, 0].numpy() for name, images in sets.items()}
        scores["vae_nll"] = nll
        png = {name: png_bits(images) for name, images in sets.items()}
        scores["vae_nll_minus_png"] = {name: nats_to_bits(nll[name]) - png[name] for name in sets}
        # The complexity term alone: how much of the corrected score's ranking is the PNG's.
        scores["minus_png"] = {name: -png[name] for name in sets}

    aurocs = {score: auroc(s[dataset], s[other]) for score, s in scores.items()}
    metrics = {"ood": {"auroc": aurocs}}
    report = {"in_distribution": dataset, "out_of_distribution": other, "images": len(inside),
              "auroc": aurocs, "mean_score": {score: {name: float(v.mean()) for name, v in s.items()}
                                              for score, s in scores.items()}}
    write_json(root / METRICS, metrics)
    write_json(root / REPORT, report)
    for score, s in scores.items():
        write_csv(root / PLOTS_DIR / "roc" / f"{score}.csv", roc(s[dataset], s[other]))
    save_figure(root / PLOTS_DIR / "histograms.png", plots.score_histograms(
        scores, f"{dataset} test (in) vs {other} test (out), first {len(inside)} images each"))
    print(f"ood: {dataset} vs {other}, AUROC {fmt_metrics(aurocs)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main)
