"""Representations: uint8 images (N, 28, 28) to codes (N, d) and back to [0, 1] images.

The AE (its z), the VAE (its mu) and PCA all go through the same path, so their
numbers compare directly; PCA with ``latent_dim`` components is the linear baseline
every autoencoder should beat. Also the per-image errors and the latent walks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import models, paths
from .data import IMAGE_SIDE, slug
from .device import batched
from .inputs import normalize, to_unit
from .io import load_arrays, save_arrays
from .models import AutoEncoder
from .pca import KEYS, principal_axes


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
    """An AE's z or a VAE's mu; decoding mu gives the VAE's reconstructions. The model
    runs in channels-last layout, as it trained (device.on_device): its convs run 2.5x
    faster so on this project's CPU (encoding 20,000 images: 0.69 s against 1.71 s)."""

    def __init__(self, name: str, model: AutoEncoder, device: torch.device | str):
        self.name, self.device = name, device
        self.model = model.to(device, memory_format=torch.channels_last).eval()
        self.dim = model.cfg.latent_dim

    def encode(self, images: np.ndarray) -> np.ndarray:
        x = normalize(images, self.model.cfg.input).contiguous(memory_format=torch.channels_last)
        return batched(self.model.encode, x, self.device).numpy()

    def decode(self, z: np.ndarray) -> np.ndarray:
        x = batched(self.model.decode, torch.from_numpy(np.asarray(z, dtype=np.float32)), self.device)
        return to_unit(x, self.model.cfg.input)[:, 0].numpy()  # (N, 28, 28)


class PCARepresentation(Representation):
    """PCA fitted on the train pixels only, on the [0, 1] scale, computed so that no BLAS
    kernel or thread count moves a bit of its codes or reconstructions.

    The pixels are integers (0..255), so their covariance is exact (:mod:`.pca`). Only its
    eigenvectors come from LAPACK, whose last bits do move; they are rounded to a grid of
    2**-QUANT_BITS (~1e-6, far coarser than LAPACK's ~1e-14), signed by their largest
    entry, and everything after is again integer arithmetic below 2**53 (bounded by
    Cauchy-Schwarz: the rows' norms times 2**QUANT_BITS) or elementwise IEEE operations.
    """

    QUANT_BITS = 20
    # A component whose train variance is below this share of the largest is left out:
    # standardized for a probe, its near-zero spread would blow up any image that has ink
    # there (MNIST's 67 always-blank pixels). It matters only for codes near the image's
    # size: MNIST's train split has 671 components above it.
    MIN_VARIANCE_SHARE = 1e-6
    ENCODE_BLOCK = 1024  # images per product in encode

    def __init__(self, components: np.ndarray, sums: np.ndarray, n: int):
        self.name, self.dim = "pca", components.shape[1]
        self.components, self.sums, self.n = components, sums, n  # integers, (784, d); (784,)
        self.mean = sums / (n * 255.0)  # the train mean on [0, 1]
        self._mean_code = (sums @ components) / n  # the mean's code, 255 * 2**bits units

    @classmethod
    def fit(cls, train_images: np.ndarray, dim: int) -> PCARepresentation:
        """The ``dim`` leading components, or as many as have variance (``MIN_VARIANCE_SHARE``)."""
        return cls.from_axes(principal_axes(train_images), dim)

    @classmethod
    def from_axes(cls, axes: dict[str, np.ndarray], dim: int) -> PCARepresentation:
        """:meth:`fit` from the train images' :func:`.pca.principal_axes` (preprocess's)."""
        values, vectors, sums, n = (axes[k] for k in KEYS)
        dim = min(dim, int((values > values[-1] * cls.MIN_VARIANCE_SHARE).sum()))
        vectors = vectors[:, ::-1][:, :dim]  # (784, d), the largest eigenvalues first
        vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dim)])
        return cls(np.round(vectors * 2.0**cls.QUANT_BITS), sums, int(n))

    def save(self, path: Path) -> None:
        save_arrays(path, components=self.components, sums=self.sums, n=np.array(self.n))

    @classmethod
    def load(cls, path: Path) -> PCARepresentation:
        arrays = load_arrays(path, ("components", "sums", "n"))
        return cls(arrays["components"], arrays["sums"], int(arrays["n"]))

    def encode(self, images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), -1)
        codes = np.empty((len(flat), self.dim))
        # Exact whatever the order of the sums, so in blocks: the float64 copy of a whole split
        # (54,000 images: 340 MB) made encoding it 1.9 s; in blocks it takes 0.03 s, the same bits.
        for block in range(0, len(flat), self.ENCODE_BLOCK):
            rows = slice(block, block + self.ENCODE_BLOCK)
            codes[rows] = flat[rows].astype(np.float64) @ self.components
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


def mse_summary(mse: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """``mse_{mean,median,min,max,p95}`` and, per class, ``mse_mean_<class>``."""
    out = {"mse_mean": float(mse.mean()), "mse_median": float(np.median(mse)), "mse_min": float(mse.min()),
           "mse_max": float(mse.max()), "mse_p95": float(np.percentile(mse, 95))}
    for c, cls in enumerate(classes):
        if (labels == c).any():
            out[f"mse_mean_{slug(cls)}"] = float(mse[labels == c].mean())
    return out


def load_representations(root: Path, device: torch.device | str, pca: bool = True) -> dict[str, Representation]:
    """By name: the trained AE and VAE, and the PCA that evaluate fitted (unless ``pca`` is False)."""
    reps: dict[str, Representation] = {name: ModelRepresentation(name, models.load(root / path), device)
                                       for name, path in (("ae", paths.AE), ("vae", paths.VAE))}
    if pca:
        reps["pca"] = PCARepresentation.load(root / paths.PCA)
    return reps


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """Features as they are when 2-D; otherwise a 2-D PCA or t-SNE projection."""
    if features.shape[1] == 2:
        return features, ("z[0]", "z[1]")
    if features.shape[1] == 1:
        return np.column_stack([features[:, 0], np.zeros(len(features))]), ("z[0]", "")
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=seed).fit_transform(features), ("t-SNE 1", "t-SNE 2")
    from sklearn.decomposition import PCA

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
