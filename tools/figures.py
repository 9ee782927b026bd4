"""The studies' figures (tools/): the sweep, the budget, error bars over seeds, and
panels of saved PNGs. Not in stages/core/plots.py: a change here reruns no stage.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stages.core.plots import plt


def error_bars(panels: dict[str, pd.DataFrame], title: str = "") -> Figure:
    """One panel per quantity: a point per row at ``mean``, a bar of +- ``half_width``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.45 * max(map(len, panels.values())) + 1.6),
                             squeeze=False)
    for ax, (xlabel, frame) in zip(axes[0], panels.items()):
        y = np.arange(len(frame))[::-1]
        ax.errorbar(frame["mean"], y, xerr=frame["half_width"], fmt="o", capsize=4)
        ax.set_yticks(y, frame.index)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep(df: pd.DataFrame, reps: list[str]) -> Figure:
    """The latent-size sweep: test MSE and probe accuracy against latent_dim, each with its
    95 % interval over the seeds (columns ``<number>_ci``), the pixel baselines as lines."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {r: f"C{i}" for i, r in enumerate(reps)}
    for r in reps:  # error bars: the 95 % interval over the seeds per size (none for one seed)
        left.errorbar(df["latent_dim"], df[f"{r}_mse"], yerr=df[f"{r}_mse_ci"], marker="o", capsize=3,
                      color=colors[r], label=r.upper())
        for c, style in (("mlp", "-"), ("logreg", "--")):
            right.errorbar(df["latent_dim"], df[f"{r}_{c}"], yerr=df[f"{r}_{c}_ci"], fmt=style, marker="o", capsize=3,
                           color=colors[r], label=f"{r.upper()} {c}")
    for name, style in (("pixels_mlp", "-"), ("pixels_logreg", "--")):
        right.axhline(df[name].iloc[-1], color="black", linestyle=style, linewidth=1,
                      label=f"pixels {name.split('_')[1]}")
    low, high = right.get_ylim()  # axhline does not widen the limits: keep the pixel lines off the frame
    top = max(high, float(df[["pixels_mlp", "pixels_logreg"]].iloc[-1].max()))
    right.set_ylim(low, top + 0.05 * (top - low))
    left.set(ylabel="test MSE per pixel, [0, 1] scale", title="Reconstruction")
    right.set(ylabel="test accuracy", title="Probes on the latents (pixels: black)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(df["latent_dim"], [str(d) for d in df["latent_dim"]])
        ax.set_xlabel("latent_dim")
    left.legend(fontsize=8)
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def budget(summary: pd.DataFrame, control: dict | None = None) -> Figure:
    """Size or budget: best latent - pixels and the AE's test MSE against the AE and VAE
    epochs, a line per latent size, each point with its 95 % interval over the seeds (a
    hollow point: one run, no interval); ``control`` {d: the bottleneck control's probe -
    pixels} as a dashed line per size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labelled = set()
    for i, (d, g) in enumerate(summary.groupby("latent_dim")):
        one = g[g["n"] < 2]
        for ax, col in ((left, "best_minus_pixels"), (right, "ae_mse")):
            ax.errorbar(g["epochs"], g[col], yerr=g[f"{col}_ci"], marker="o", capsize=3, color=f"C{i}",
                        label=f"d = {d}")
            ax.plot(one["epochs"], one[col], "o", color="white", markeredgecolor=f"C{i}", zorder=3,
                    label="one run" if len(one) and ax not in labelled else None)
            labelled |= {ax} if len(one) else set()
        if d in (control or {}):
            left.axhline(control[d], color=f"C{i}", linestyle="--", linewidth=1,
                         label=f"bottleneck control, d = {d}")
    left.axhline(0, color="black", linewidth=1)
    left.set(ylabel="best latent - pixels, test accuracy", title="The latents against the pixels")
    right.set(ylabel="AE test MSE per pixel, [0, 1] scale", title="Reconstruction")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.minorticks_off()
        ticks = sorted(summary["epochs"].unique())
        ax.set_xticks(ticks, [str(e) for e in ticks])
        ax.set_xlabel("AE and VAE epochs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def png_panels(files: dict, ncols: int, title: str = "") -> Figure:
    """Saved figures (PNG files, or their bytes), one panel each with its label, ``ncols`` per row."""
    nrows = -(-len(files) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 4 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, png) in zip(axes.flat, files.items()):
        ax.imshow(plt.imread(io.BytesIO(png) if isinstance(png, bytes) else png, format="png"))
        ax.set_title(label, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
