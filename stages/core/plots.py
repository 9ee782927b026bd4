"""Figures, the only place one is drawn: arrays in, a matplotlib Figure out.

Images are on the [0, 1] scale, shaped (N, 28, 28) or (N, 1, 28, 28), numpy or torch.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _images(images) -> np.ndarray:
    a = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)  # torch or numpy
    return a.reshape(len(a), a.shape[-2], a.shape[-1])  # (N, H, W)


def _tile(images: np.ndarray, ncols: int, padding: int = 0, pad_value: float = 0.0) -> np.ndarray:
    """Images (N, H, W) in rows of ``ncols``, ``padding`` pixels around each: torchvision's
    make_grid, pixel for pixel, without its 2 s import in every stage that draws."""
    n, h, w = images.shape
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding), pad_value, dtype=np.float32)
    for i, image in enumerate(images):
        y, x = (padding + k * (size + padding) for k, size in zip(divmod(i, ncols), (h, w)))
        out[y : y + h, x : x + w] = image
    return out


def image_grid(images, titles: list[str] | None = None, ncols: int = 8, suptitle: str = "") -> Figure:
    """A grid of images, each with an optional title (class names, predictions)."""
    images = _images(images)
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.6 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            if titles:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def rows_of_images(rows: dict[str, np.ndarray], title: str = "") -> Figure:
    """One labelled row per entry: originals over reconstructions, interpolation strips;
    a row without images says "none" (no test image above an anomaly threshold)."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.5 * len(rows)), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        images = _images(images)
        if len(images):
            ax.imshow(_tile(images, len(images), padding=2, pad_value=1.0), cmap="gray", vmin=0, vmax=1)
        else:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def manifold(images: np.ndarray, z1: np.ndarray, z2: np.ndarray, title: str, points: np.ndarray | None = None,
             labels: np.ndarray | None = None, classes: list[str] | None = None) -> Figure:
    """Images decoded on a grid over the latent plane: ``images`` is (len(z2) * len(z1), H, W),
    row-major from the top row (largest z2); ``points`` (N, 2) with ``labels`` are drawn over it."""
    grid = _tile(_images(images), len(z1))
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, extent=(z1[0], z1[-1], z2[0], z2[-1]), aspect="auto")
    if points is not None:
        cmap = plt.get_cmap("tab10")
        for c, name in enumerate(classes):
            sel = labels == c
            ax.scatter(points[sel, 0], points[sel, 1], s=2, alpha=0.35, color=cmap(c % 10), label=name)
        ax.set(xlim=(z1[0], z1[-1]), ylim=(z2[0], z2[-1]))
        ax.legend(markerscale=5, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _overlaid(ax, values: dict[str, np.ndarray], bins: int, log: bool = False) -> None:
    """One histogram per entry of ``values`` on ``ax``, all on the same bins."""
    lo = min(float(np.min(v)) for v in values.values())
    hi = max(float(np.max(v)) for v in values.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    for label, v in values.items():
        ax.hist(v, bins=edges, alpha=0.5, label=label, log=log)


def histograms(values: dict[str, np.ndarray], xlabel: str, title: str = "", bins: int = 60, log: bool = False) -> Figure:
    """Overlaid histograms on shared bins (pixel intensities, per-image MSE)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    _overlaid(ax, values, bins, log)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if len(values) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def score_histograms(scores: dict[str, dict[str, np.ndarray]], labels: dict[str, tuple[str, str]],
                     title: str = "") -> Figure:
    """One panel per score, each with the overlaid histograms of its sets (in vs out);
    ``labels``: score -> (panel title, x label with units)."""
    ncols = min(3, len(scores))
    nrows = -(-len(scores) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(scores):]:
        ax.axis("off")
    for ax, (name, sets) in zip(axes.flat, scores.items()):
        _overlaid(ax, sets, bins=40)
        ax.set_title(labels[name][0], fontsize=9)
        ax.set_xlabel(labels[name][1], fontsize=8)
        ax.set_ylabel("images")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bars(counts: pd.DataFrame, title: str, ylabel: str) -> Figure:
    """Grouped bars: one group per index entry, one bar per column; the legend outside the axes."""
    fig, ax = plt.subplots(figsize=(10, 4))
    counts.plot.bar(ax=ax, rot=30)
    ax.set(title=title, ylabel=ylabel, xlabel="")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def latent_histograms(mu: np.ndarray, max_dims: int = 16) -> Figure:
    """Each latent mean's histogram against the N(0, 1) density the prior asks for."""
    d = min(mu.shape[1], max_dims)
    ncols = min(d, 4)
    nrows = -(-d // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.5 * nrows), squeeze=False)
    grid = np.linspace(-4, 4, 200)
    for i, ax in enumerate(axes.flat):
        if i >= d:
            ax.axis("off")
            continue
        ax.hist(mu[:, i], bins=50, density=True, alpha=0.6)
        ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
        ax.set_title(f"mu[{i}]", fontsize=9)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def scatter(points: np.ndarray, labels: np.ndarray, classes: list[str], title: str, axis_labels=("z[0]", "z[1]")) -> Figure:
    """A 2-D scatter coloured by class name."""
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(classes):
        sel = labels == c
        ax.scatter(points[sel, 0], points[sel, 1], s=3, alpha=0.5, color=cmap(c % 10), label=name)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.legend(markerscale=4, fontsize=7, loc="best")
    fig.tight_layout()
    return fig


CURVES = {"train_": "train, mean during the epoch", "train_eval_": "train, after the epoch (eval mode)",
          "val_": "val, after the epoch"}


def curves(history: pd.DataFrame, ylabels: dict[str, str], title: str = "") -> Figure:
    """Per-epoch curves, one panel per quantity (``ylabels``: quantity -> its label with
    units), the three curves of :data:`CURVES` overlaid. A quantity whose numbers are the
    loss's (the AE's mse when it trains on mse) is not drawn twice."""
    def same_as_loss(q: str) -> bool:  # equal up to float rounding (the AE's mse when it trains on mse)
        return all(f"{p}loss" in history and np.allclose(history[f"{p}{q}"], history[f"{p}loss"], rtol=1e-5, atol=0)
                   for p in CURVES if f"{p}{q}" in history)

    quantities = [q for q in ylabels if f"val_{q}" in history and (q == "loss" or not same_as_loss(q))]
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.8 * len(quantities), 3.6), squeeze=False)
    for ax, q in zip(axes[0], quantities):
        for prefix, label in CURVES.items():
            if f"{prefix}{q}" in history:
                ax.plot(history["epoch"], history[f"{prefix}{q}"], marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=ylabels[q], title=q)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion(actual: np.ndarray, predicted: np.ndarray, classes: list[str], title: str) -> Figure:
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay.from_predictions(actual, predicted, labels=range(len(classes)), display_labels=classes,
                                            ax=ax, xticks_rotation=45, colorbar=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig
