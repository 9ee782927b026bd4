"""Out-of-distribution scores and how well they separate two test sets.

A score is higher for images the model finds stranger: a reconstruction error, the
VAE's -log p(x) bound, or that bound corrected by the image's complexity. Complexity
is the length of the image under a lossless compressor, PNG here (Serrà et al., ICLR
2020, "Input complexity and out-of-distribution detection with likelihood-based
generative models"): their S(x) compares the model's code length with a generic one;
with the sign used here, -log2 p(x) - L_PNG(x) in bits, higher means more out of
distribution. Separation is scikit-learn's AUROC with the in-distribution images as
negatives: 0.5 is chance, and below 0.5 the score ranks the other dataset as *more*
typical (Nalisnick et al., ICLR 2019, "Do deep generative models know what they don't
know?").
"""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from PIL import Image
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score, roc_curve


def png_bits(images: np.ndarray) -> np.ndarray:
    """Length in bits of each uint8 image (N, H, W) as a PNG (zlib level 9), (N,)."""
    out = np.empty(len(images))
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(buffer, format="PNG",
                                                                                   compress_level=9)
        out[i] = 8 * buffer.getbuffer().nbytes
    return out


def nats_to_bits(nats: np.ndarray) -> np.ndarray:
    return np.asarray(nats) / math.log(2)


def _labelled(inside: np.ndarray, outside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]  # the other dataset is the positive class
    return y, np.r_[inside, outside]


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an outside image > score of an inside one), ties counting half."""
    return float(roc_auc_score(*_labelled(inside, outside)))


def auroc_noise(scores: dict[str, tuple[np.ndarray, np.ndarray]], pairs: list[tuple[str, str]]) -> dict:
    """How far each AUROC (and each difference of two, scored on the same images) moves
    when only the scored images are drawn again: DeLong's variance of the AUROC as a
    two-sample U-statistic (DeLong, DeLong & Clarke-Pearson, 1988), from midranks, with
    the covariance of two scores' AUROCs on the same images for their difference.
    ``scores``: {name: (inside, outside)}; each AUROC and each difference of ``pairs`` (those
    whose two scores are there) gets its ``se`` and normal 95 % ``ci95``. It agrees with a bootstrap over the images (tests/test_evaluation.py)
    and costs a sort instead of a thousand."""
    names = list(scores)
    inside = np.stack([np.asarray(scores[k][0], dtype=np.float64) for k in names])
    outside = np.stack([np.asarray(scores[k][1], dtype=np.float64) for k in names])
    n, m = inside.shape[1], outside.shape[1]
    pooled = rankdata(np.concatenate([inside, outside], axis=1), axis=1)
    # each outside image: the share of inside images it outranks; each inside image: the
    # share of outside images that outrank it (ties half)
    v_out = (pooled[:, n:] - rankdata(outside, axis=1)) / n
    v_in = 1.0 - (pooled[:, :n] - rankdata(inside, axis=1)) / m
    auc = v_out.mean(axis=1)
    cov = np.atleast_2d(np.cov(v_out)) / m + np.atleast_2d(np.cov(v_in)) / n
    z = float(norm.ppf(0.975))
    idx = {k: i for i, k in enumerate(names)}
    interval = lambda mean, se: {"se": float(se), "ci95": [float(mean - z * se), float(mean + z * se)]}  # noqa: E731
    pairs = [(a, b) for a, b in pairs if a in idx and b in idx]
    out = {"method": "DeLong", "images": [n, m],
           "auroc": {k: {"auroc": float(auc[i]), **interval(auc[i], np.sqrt(cov[i, i]))} for k, i in idx.items()}, "differences": {}}
    for a, b in pairs:
        i, j = idx[a], idx[b]
        diff = auc[i] - auc[j]
        out["differences"][f"{a}-{b}"] = {"difference": float(diff),
                                          **interval(diff, np.sqrt(max(cov[i, i] + cov[j, j] - 2 * cov[i, j], 0.0)))}
    return out


def roc(inside: np.ndarray, outside: np.ndarray) -> pd.DataFrame:
    """The ROC curve's corners: false and true positive rates, outside = positive."""
    fpr, tpr, _ = roc_curve(*_labelled(inside, outside))
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})
