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


def roc(inside: np.ndarray, outside: np.ndarray) -> pd.DataFrame:
    """The ROC curve's corners: false and true positive rates, outside = positive."""
    fpr, tpr, _ = roc_curve(*_labelled(inside, outside))
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})
