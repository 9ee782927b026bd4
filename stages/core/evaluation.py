"""Evaluation: representations, reconstruction errors and downstream classifiers.

A representation maps uint8 images (N, 28, 28) to features (N, d) and back to images
on the [0, 1] scale. The AE (its z), the VAE (its mu) and PCA all go through the same
path, so their numbers compare directly; PCA with ``latent_dim`` components is the
linear baseline every autoencoder should beat.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from .data import IMAGE_SIDE, normalize, slug, to_unit
from .device import batched
from .models import AutoEncoder
from .params import check


def unit_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) on [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


class Representation:
    """encode: uint8 (N, 28, 28) -> (N, d); decode: (N, d) -> (N, 28, 28) on [0, 1]."""

    name: str
    dim: int

    def encode(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ModelRepresentation(Representation):
    """An AE's z or a VAE's mu; decoding mu gives the VAE's reconstructions."""

    def __init__(self, name: str, model: AutoEncoder, device: torch.device):
        self.name, self.model, self.device = name, model.to(device).eval(), device
        self.dim = model.cfg.latent_dim

    def encode(self, images: np.ndarray) -> np.ndarray:
        return batched(self.model.encode, normalize(images, self.model.cfg.input), self.device).numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        x = batched(self.model.decode, torch.from_numpy(np.asarray(z, dtype=np.float32)), self.device)
        return to_unit(x, self.model.cfg.input)[:, 0].numpy()  # (N, 28, 28)


class PCARepresentation(Representation):
    """PCA fitted on the train pixels only, on the [0, 1] scale, computed so that no BLAS
    kernel or thread count moves a bit of its codes or reconstructions.

    The pixels are integers (0..255): their Gram matrix and sums are integers below 2**53,
    exact in float64 whatever order a BLAS kernel adds in. Only the eigenvectors of that
    exact covariance come from LAPACK, whose last bits do move; they are rounded to a grid
    of 2**-QUANT_BITS (~1e-6, far coarser than LAPACK's ~1e-14), signed by their largest
    entry, and everything after is again integer arithmetic below 2**53 (bounded by
    Cauchy-Schwarz: the rows' norms times 2**QUANT_BITS) or elementwise IEEE operations.
    """

    QUANT_BITS = 20

    def __init__(self, train_images: np.ndarray, dim: int):
        self.name, self.dim = "pca", dim
        x = train_images.reshape(len(train_images), -1).astype(np.float64)  # integers 0..255
        n, sums = len(x), x.sum(axis=0)
        covariance = n * (x.T @ x) - np.outer(sums, sums)  # n**2 * Cov, exact integers
        _, vectors = np.linalg.eigh(covariance)
        vectors = vectors[:, ::-1][:, :dim]  # (784, d), the largest eigenvalues first
        vectors *= np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dim)])
        self.components = np.round(vectors * 2.0**self.QUANT_BITS)  # integers, (784, d)
        self.mean = sums / (n * 255.0)  # the train mean on [0, 1]
        self._mean_code = (sums @ self.components) / n  # the mean's code, 255 * 2**bits units

    def encode(self, images: np.ndarray) -> np.ndarray:
        codes = images.reshape(len(images), -1).astype(np.float64) @ self.components  # exact
        return ((codes - self._mean_code) / (255.0 * 2.0**self.QUANT_BITS)).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        steps = np.round(np.asarray(z, dtype=np.float64) * 2.0**self.QUANT_BITS)  # integers: exact products
        x = self.mean + (steps @ self.components.T) / 2.0 ** (2 * self.QUANT_BITS)
        # Clipped to the valid range, as the AE's sigmoid output is.
        return np.clip(x, 0.0, 1.0).reshape(len(z), IMAGE_SIDE, IMAGE_SIDE).astype(np.float32)


def per_image_mse(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-pixel MSE of each image on the [0, 1] scale: uint8 (N, 28, 28) vs [0, 1] (N, 28, 28) -> (N,)."""
    diff = unit_pixels(images) - reconstructions.reshape(len(reconstructions), -1)
    return (diff.astype(np.float64) ** 2).mean(axis=1)


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per (actual, predicted) pair of classes with its count, zeros included:
    100 rows for `dvc plots` (its confusion_counts template sums them) instead of one
    row per test image."""
    n = len(classes)
    counts = np.bincount(np.asarray(actual) * n + np.asarray(predicted), minlength=n * n)
    return pd.DataFrame({"actual": np.repeat(classes, n), "predicted": np.tile(classes, n), "count": counts})


def mse_summary(mse: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """``mse_{mean,median,min,max,p95}`` and, per class, ``mse_mean_<class>``."""
    out = {"mse_mean": float(mse.mean()), "mse_median": float(np.median(mse)), "mse_min": float(mse.min()),
           "mse_max": float(mse.max()), "mse_p95": float(np.percentile(mse, 95))}
    for c, cls in enumerate(classes):
        if (labels == c).any():
            out[f"mse_mean_{slug(cls)}"] = float(mse[labels == c].mean())
    return out


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """Features as they are when 2-D; otherwise a 2-D PCA or t-SNE projection."""
    if features.shape[1] == 2:
        return features, ("z[0]", "z[1]")
    if features.shape[1] == 1:
        return np.column_stack([features[:, 0], np.zeros(len(features))]), ("z[0]", "")
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=seed).fit_transform(features), ("t-SNE 1", "t-SNE 2")
    return PCA(n_components=2, random_state=seed).fit_transform(features), ("PC 1", "PC 2")


def latent_grid(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An n x n grid over the occupied part of a 2-D latent plane (1st to 99th percentile).

    Returns (z (n*n, 2) row-major from the top row, z1 values, z2 values ascending).
    """
    z1 = np.linspace(*np.percentile(codes[:, 0], [1, 99]), n)
    z2 = np.linspace(*np.percentile(codes[:, 1], [1, 99]), n)
    zz = np.array([[a, b] for b in z2[::-1] for a in z1], dtype=np.float32)
    return zz, z1, z2


def interpolate(rep: Representation, a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Decode ``steps`` points on the line between the codes of images ``a`` and ``b``."""
    za, zb = rep.encode(np.stack([a, b]))
    t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
    return rep.decode((1 - t) * za + t * zb)


# ---------------------------------------------------------------- latent arithmetic
def attribute_vector(codes: np.ndarray, labels: np.ndarray, a: int, b: int) -> np.ndarray:
    """Mean code of class ``b`` minus mean code of class ``a``, (d,): the course's
    "smile" direction (mean latent with the attribute minus mean latent without)."""
    return codes[labels == b].mean(0) - codes[labels == a].mean(0)


def walk(rep: Representation, images: np.ndarray, v: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Decode z + alpha * v for each image's code z and each alpha: (N, len(alphas), 28, 28)."""
    z = rep.encode(images)  # (N, d)
    zz = z[:, None, :] + np.asarray(alphas, dtype=np.float32)[:, None] * v  # (N, A, d)
    out = rep.decode(zz.reshape(-1, z.shape[1]).astype(np.float32))  # (N * A, 28, 28)
    return out.reshape(len(images), len(alphas), *out.shape[1:])


# -------------------------------------------------------------------------- downstream
def standardize(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scale every split with the train split's mean and std only."""
    scaler = StandardScaler().fit(features["train"])
    return {split: scaler.transform(x).astype(np.float32) for split, x in features.items()}


@dataclass(frozen=True)
class LogregConfig:
    """The ``logreg`` section: the linear probe every representation gets, pixels included.
    No defaults here: params.yaml holds them, and a missing key is an error naming it."""

    C: tuple[float, ...]  # inverse L2 strengths, one chosen on val
    max_iter: int  # a cap that convergence should never reach
    tol: float  # lbfgs stops when the largest gradient entry of the mean loss is below it

    def __post_init__(self) -> None:
        check(len(self.C) >= 1 and min(self.C) > 0, "C", f"need values > 0, got {list(self.C)}")
        check(self.max_iter >= 1, "max_iter", f"must be >= 1, got {self.max_iter}")
        check(self.tol > 0, "tol", f"must be > 0, got {self.tol}")


@dataclass
class LogregResult:
    C: float
    val_acc: float
    test_acc: float
    test_pred: np.ndarray
    n_iter: dict[float, int]  # iterations lbfgs took, for every C of the grid (the logs print them)
    converged: bool  # every C of the grid stopped on tol, not on max_iter

    def record(self) -> dict:
        """What the reports keep: not the iteration counts, which the BLAS kernel moves by a
        few while the predictions stay."""
        return {"C": self.C, "val_acc": self.val_acc, "test_acc": self.test_acc, "converged": self.converged}


def logistic_regression(x: dict[str, np.ndarray], y: dict[str, np.ndarray], cfg: LogregConfig,
                        seed: int = 0) -> LogregResult:
    """Multinomial logistic regression (lbfgs) fitted from scratch for each C of the grid,
    C chosen on val; test is predicted once, by the chosen model. A fit that stops at
    ``max_iter`` warns (sklearn's ConvergenceWarning) and is recorded as not converged."""
    # float64: on float32 features lbfgs works in float32, and the BLAS kernel then moves
    # its predictions (measured: README, "Determinism").
    x = {split: np.asarray(v, dtype=np.float64) for split, v in x.items()}
    best, n_iter = None, {}
    for C in sorted(cfg.C):
        model = LogisticRegression(C=C, max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed).fit(x["train"], y["train"])
        n_iter[C] = int(model.n_iter_.max())
        val_acc = float((model.predict(x["val"]) == y["val"]).mean())
        if best is None or val_acc > best[1]:
            best = (C, val_acc, model)
    C, val_acc, model = best
    pred = model.predict(x["test"])
    return LogregResult(C, val_acc, float((pred == y["test"]).mean()), pred, n_iter,
                        all(n < cfg.max_iter for n in n_iter.values()))


def knn_accuracy(x: dict[str, np.ndarray], y: dict[str, np.ndarray], ks: tuple[int, ...]) -> dict[str, dict]:
    """k-nearest-neighbour accuracy on val and test, the train split as the neighbours, for
    each fixed k: Euclidean distance in the space the codes live in (not standardized), as
    published tables of these models report it. A k-d tree computes exact distances
    itself, so no BLAS kernel moves a neighbour."""
    x = {split: np.asarray(v, dtype=np.float64) for split, v in x.items()}
    out = {}
    for k in ks:
        model = KNeighborsClassifier(n_neighbors=k, algorithm="kd_tree").fit(x["train"], y["train"])
        out[f"k={k}"] = {f"{s}_acc": float((model.predict(x[s]) == y[s]).mean()) for s in ("val", "test")}
    return out
