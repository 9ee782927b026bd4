"""params.yaml's schema: one frozen dataclass per section, in the file's order.

No field has a default (params.yaml holds them) and each dataclass checks its own
values once. The training seed is one top-level key that the three training configs
share (``top_level_field``). The model's keys (the ``model`` section, ``latent_dim``, ``train_vae.beta``)
are declared by the model's own config, models.ConvConfig, which builders.py fills
from these sections (``loss`` is the training section's and goes to the model too).
The one check across sections, a loss that suits the input scale, is
:func:`check_loss_scale`, which the builders call. Light on purpose: no torch here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .params import check, check_choice, top_level_field

DATASETS = ("mnist", "fashion_mnist")
NORMALIZATIONS = ("unit", "symmetric")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("onecycle", "constant")
LOSSES = ("mse", "bce")
PROJECTIONS = ("pca", "tsne")


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    val_fraction: float  # the stratified slice of the official training set
    seed: int

    def __post_init__(self) -> None:
        check_choice(self.dataset, DATASETS, "dataset")
        check(0 < self.val_fraction < 1, "val_fraction", f"must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class InputConfig:
    """The input transform, applied at load time; checkpoints keep it, so a model feeds itself."""

    normalize: str  # unit [0, 1] or symmetric [-1, 1]
    pad: int  # 0, or 2 for 32x32

    def __post_init__(self) -> None:
        check_choice(self.normalize, NORMALIZATIONS, "normalize")
        check(self.pad in (0, 2), "pad", f"must be 0 or 2, got {self.pad}")


@dataclass(frozen=True)
class TrainConfig:
    """The keys every training section shares."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str  # adam or sgd (momentum 0.9)
    lr_schedule: str  # onecycle or constant
    patience: int  # stop after this many epochs without a better val loss; 0 = never
    seed: int = top_level_field()  # params.yaml's top-level seed: initial weights and batch order

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.patience >= 0, "patience", f"must be >= 0, got {self.patience}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.lr_schedule, SCHEDULES, "lr_schedule")


@dataclass(frozen=True)
class ClassifierConfig(TrainConfig):
    """``train_classifier``: the MLP, on pixels and on every latent."""

    hidden: tuple[int, ...]
    dropout: float

    def __post_init__(self) -> None:
        super().__post_init__()
        check(all(h >= 1 for h in self.hidden), "hidden", f"sizes must be >= 1, got {list(self.hidden)}")
        check(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class LogregConfig:
    """``logreg``: the linear probe, on pixels and on every latent."""

    C: tuple[float, ...]  # inverse L2 strengths, one chosen on val
    max_iter: int  # a cap that convergence should never reach
    tol: float  # lbfgs stops when the largest gradient entry of the mean loss is below it

    def __post_init__(self) -> None:
        check(len(self.C) >= 1 and min(self.C) > 0, "C", f"need values > 0, got {list(self.C)}")
        check(self.max_iter >= 1, "max_iter", f"must be >= 1, got {self.max_iter}")
        check(self.tol > 0, "tol", f"must be > 0, got {self.tol}")


@dataclass(frozen=True)
class AEConfig(TrainConfig):
    """``train_ae``: the shared training keys and the reconstruction loss."""

    loss: str  # mse or bce (bce needs input.normalize: unit)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.loss, LOSSES, "loss")


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    """``train_vae``: the AE's keys, the prior samples and the IWAE bound; its ``beta`` is
    the model's (models.VAEModelConfig)."""

    n_samples: int  # images decoded from the prior for samples.png
    iwae_k: int  # importance samples per image for the IWAE bound
    iwae_images: int  # the IWAE bound on the first this many test images

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_samples >= 1, "n_samples", f"must be >= 1, got {self.n_samples}")
        check(self.iwae_k >= 1, "iwae_k", f"must be >= 1, got {self.iwae_k}")
        check(self.iwae_images >= 1, "iwae_images", f"must be >= 1, got {self.iwae_images}")


@dataclass(frozen=True)
class EvaluateConfig:
    projection: str  # 2-D view of latents with more than 2 dims: pca or tsne (slow)
    n_extremes: int  # best and worst reconstructions shown per representation
    grid_size: int  # decoded latent-plane grid, n x n, when latent_dim == 2
    interpolation_steps: int
    seed: int  # the 2-D projection of latents with more than 2 dims
    arithmetic_pairs: tuple[str, ...]  # "a->b" class slugs; pairs of the other dataset are skipped
    arithmetic_alphas: tuple[float, ...]  # the columns of arithmetic_<model>.png: z + alpha * v
    arithmetic_images: int  # test images of class a per pair in the figure

    def __post_init__(self) -> None:
        check_choice(self.projection, PROJECTIONS, "projection")
        for key in ("n_extremes", "grid_size", "interpolation_steps"):
            check(getattr(self, key) >= 2, key, f"must be >= 2, got {getattr(self, key)}")
        for pair in self.arithmetic_pairs:
            check(re.fullmatch(r"\w+->\w+", pair) is not None, "arithmetic_pairs",
                  f"{pair!r} is not 'a->b' with two class names such as 'sneaker->ankle_boot'")
        check(len(self.arithmetic_alphas) >= 1, "arithmetic_alphas", "need at least one alpha")
        check(self.arithmetic_images >= 1, "arithmetic_images", f"must be >= 1, got {self.arithmetic_images}")


@dataclass(frozen=True)
class OODConfig:
    images: int  # the first this many test images of each dataset are scored

    def __post_init__(self) -> None:
        check(self.images >= 2, "images", f"must be >= 2, got {self.images}")


def check_loss_scale(section: str, loss: str, inp: InputConfig) -> None:
    """BCE needs targets in [0, 1]: ``<section>.loss: bce`` with ``input.normalize: symmetric`` is refused."""
    check(not (loss == "bce" and inp.normalize == "symmetric"), f"{section}.loss",
          "bce needs targets in [0, 1] but input.normalize is symmetric ([-1, 1]); "
          "use loss: mse, or input.normalize: unit")
