"""The input transform: uint8 images to the tensors a model takes, and back to [0, 1].

Normalization and padding happen at load time and are undone for reporting by
:func:`to_unit`, so every error is measured on the [0, 1] scale of the 28x28 image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .config import InputConfig
from .data import SPLITS, load_split


def normalize(images: np.ndarray, cfg: InputConfig) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28 + 2 pad, 28 + 2 pad) in [0, 1] or [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255).unsqueeze(1)  # (N, 1, 28, 28)
    if cfg.pad:
        x = F.pad(x, (cfg.pad,) * 4)  # black border, before the shift to [-1, 1]
    return (x - 0.5) / 0.5 if cfg.normalize == "symmetric" else x


def to_unit(x: torch.Tensor, cfg: InputConfig) -> torch.Tensor:
    """Undo :func:`normalize`: back to [0, 1] and the original 28x28 (N, 1, 28, 28)."""
    if cfg.normalize == "symmetric":
        x = x * 0.5 + 0.5
    return x[..., cfg.pad : x.shape[-2] - cfg.pad, cfg.pad : x.shape[-1] - cfg.pad]


def batches(n: int, batch_size: int, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Index batches over ``n`` items on ``device``: shuffled by ``generator`` (a CPU
    generator, so the order is the same on every device) when one is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from order.to(device).split(batch_size)


def load_tensors(processed_dir: Path, pre: InputConfig, splits: tuple[str, ...] = SPLITS
                 ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    """``{split: (x, y)}`` normalized for training, and the class names."""
    out, classes = {}, []
    for name in splits:
        s = load_split(processed_dir, name)
        out[name] = (normalize(s.images, pre), torch.from_numpy(s.labels))
        classes = s.classes
    return out, classes
