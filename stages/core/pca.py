"""The train pixels' principal axes, computed exactly: every PCA baseline takes its
components from them (representations.PCARepresentation). They depend on the train split
alone, not on the latent size, so preprocess computes them once and a latent experiment
only keeps the leading ``latent_dim``.

The pixels are integers (0..255): their Gram matrix and sums are integers below 2**53,
exact in float64 whatever order a BLAS kernel adds in; only the eigenvectors come from
LAPACK.
"""
from __future__ import annotations

import numpy as np

KEYS = ("values", "vectors", "sums", "n")
FILE = "pca_axes.npz"  # in data/processed, beside the splits


def principal_axes(images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, 28, 28) -> the eigenvalues (ascending) and eigenvectors (784, 784) of
    n**2 times their covariance, the pixel sums (784,) and n."""
    x = images.reshape(len(images), -1).astype(np.float64)  # integers 0..255
    n, sums = len(x), x.sum(axis=0)
    covariance = n * (x.T @ x) - np.outer(sums, sums)  # n**2 * Cov, exact integers
    values, vectors = np.linalg.eigh(covariance)
    return {"values": values, "vectors": vectors, "sums": sums, "n": np.array(n)}
