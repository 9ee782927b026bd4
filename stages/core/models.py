"""Models, each owning its loss: ``model.loss(x, y) -> (loss, stats)``.

The MLP classifies pixels or latent codes; the AE and the VAE are built from the same
parts of one architecture (:mod:`.archs`), and the VAE adds only the logvar head, the
reparameterization and the KL term.
Each model's config says everything that rebuilds and feeds it (its loss, beta, its
input transform), so a checkpoint is all a later stage needs. Every ``stats`` value is
a detached 0-d tensor; reconstruction models report ``mse`` per pixel on [0, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .archs import ACTIVATIONS, ARCHS, DECODERS
from .config import InputConfig
from .data import IMAGE_SIDE
from .errors import PipelineError
from .inputs import to_unit
from .io import load_checkpoint
from .params import check, check_choice
from .paths import rebuild_hint


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on the class logits, and the accuracy: every classifier's loss."""
    loss = F.cross_entropy(logits, y)
    return loss, {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}


@dataclass(frozen=True)
class MLPConfig:
    in_features: int
    hidden: tuple[int, ...]
    dropout: float
    n_classes: int
    input: InputConfig | None  # how images are fed to it; None for latent codes


class MLP(nn.Module):
    """Flatten, then Linear-ReLU-Dropout per hidden size, then the class logits."""

    kind = "mlp"

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = [nn.Flatten()]
        width = cfg.in_features
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, cfg.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, n_classes) logits

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return classification_loss(self(x), y)


@dataclass(frozen=True)
class ConvConfig:
    """The AE's config, declared once: params.yaml's ``model`` section (a course preset
    over it), ``latent_dim``, the input transform, which sets the output activation
    (sigmoid for [0, 1], tanh for [-1, 1]) and the image size, and ``train_ae.loss``.
    ``arch`` names the architecture (:mod:`.archs`); the keys after ``latent_dim`` shape
    the backbone and its presets. The field order is the checkpoints' key order."""

    arch: str  # backbone, or a course model by name (docs/course.md)
    latent_dim: int
    widths: tuple[int, ...]  # conv channels, each conv with stride 2
    hidden: int  # dense layer between the convs and the latent; 0 for none
    activation: str
    decoder: str  # "convtranspose", or "upsample": nearest upsampling + 3x3 conv
    batch_norm: bool
    out_conv: bool  # end the decoder with a 3x3 conv to 1 channel
    input: InputConfig
    loss: str  # mse or bce, on the training scale

    def __post_init__(self) -> None:
        check_choice(self.arch, ARCHS, "arch")
        check(self.latent_dim >= 1, "latent_dim", f"must be >= 1, got {self.latent_dim}")
        check(len(self.widths) >= 1 and min(self.widths) >= 1, "widths", f"need >= 1 positive widths, got {list(self.widths)}")
        check(self.hidden >= 0, "hidden", f"must be >= 0 (0 for none), got {self.hidden}")
        check_choice(self.activation, ACTIVATIONS, "activation")
        check_choice(self.decoder, DECODERS, "decoder")

    @property
    def normalize(self) -> str:
        return self.input.normalize

    def sizes(self) -> list[int]:
        """Spatial side after each stride-2 conv (k=3, p=1): 28 -> 14 -> 7 -> 4."""
        sizes = [IMAGE_SIDE + 2 * self.input.pad]
        for _ in self.widths:
            sizes.append((sizes[-1] - 1) // 2 + 1)
        return sizes


@dataclass(frozen=True)
class VAEModelConfig(ConvConfig):
    """The VAE's config: the AE's and ``train_vae.beta`` (its ``loss`` is ``train_vae.loss``)."""

    beta: float  # weight of the KL term in training; 1 is the ELBO

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str, normalize: str) -> torch.Tensor:
    """Per-image reconstruction loss summed over pixels, (B,), on the training scale."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_pixel = F.mse_loss(output_activation(logits, normalize), x, reduction="none")
    return per_pixel.flatten(1).sum(1)


def output_activation(logits: torch.Tensor, normalize: str) -> torch.Tensor:
    return torch.tanh(logits) if normalize == "symmetric" else torch.sigmoid(logits)


def unit_mse(x_hat: torch.Tensor, x: torch.Tensor, pre: InputConfig) -> torch.Tensor:
    """Per-image MSE per pixel on the [0, 1] scale of the original 28x28, (B,)."""
    return (to_unit(x_hat, pre) - to_unit(x, pre)).pow(2).flatten(1).mean(1)


class AutoEncoder(nn.Module):
    """Encoder, a head to z, decoder: the parts of ``cfg.arch``."""

    kind = "ae"
    variational = False

    def __init__(self, cfg: ConvConfig):
        super().__init__()
        self.cfg = cfg
        arch = ARCHS[cfg.arch]
        self.encoder = arch.encoder(cfg)
        self.to_latent = arch.head(cfg, self.variational)  # the VAE's mu head
        self.decoder = arch.decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return output_activation(self.decoder(z), self.cfg.normalize)  # (B, 1, S, S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        logits = self.decoder(self.encode(x))
        # Mean over pixels: the scale of the course's Keras/PyTorch AE losses.
        loss = reconstruction_loss(logits, x, self.cfg.loss, self.cfg.normalize).mean() / x[0].numel()
        x_hat = output_activation(logits.detach(), self.cfg.normalize)
        return loss, {"loss": loss.detach(), "mse": unit_mse(x_hat, x, self.cfg.input).mean()}


# A latent dimension of a VAE is active when its posterior mean varies across images:
# Cov_x(E[z|x]) > 0.01 (Burda et al., 2016, section 5.2).
ACTIVE_VARIANCE = 0.01


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, summed over latent dims, (B,).

    Closed form from Kingma & Welling (2014), Auto-Encoding Variational Bayes, app. B:
    -1/2 * sum(1 + logvar - mu^2 - exp(logvar)).
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


class VAE(AutoEncoder):
    """The AE backbone with mu/logvar heads; loss = recon summed over pixels + beta * KL.

    z is sampled in both modes. In training the loss is the beta-weighted objective; in
    eval mode it is the negative ELBO (beta = 1), in nats per image with the Bernoulli
    decoder (``loss: bce``), which is what fit selects the best epoch on. ``mse`` is of
    the sample's reconstruction in training, and of the mean's (decoding mu) in eval
    mode: the reconstructions evaluate shows. Eval numbers are reproducible because the
    training loop's ``evaluate`` seeds the draws.
    """

    kind = "vae"
    variational = True

    def __init__(self, cfg: VAEModelConfig):
        super().__init__(cfg)
        self.to_logvar = ARCHS[cfg.arch].head(cfg, True)  # to_latent is the mu head

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_latent(h), self.to_logvar(h)  # (B, latent) each

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]  # the mean is the representation

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        mu, logvar = self.encode_dist(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # (B, latent)
        logits = self.decoder(z)
        recon = reconstruction_loss(logits, x, self.cfg.loss, self.cfg.normalize).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        loss = recon + (self.cfg.beta if self.training else 1.0) * kl
        x_hat = output_activation(logits.detach(), self.cfg.normalize) if self.training else self.decode(mu)
        stats = {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(),
                 "mse": unit_mse(x_hat, x, self.cfg.input).mean()}
        return loss, stats


# ----------------------------------------------------------------------- checkpoints
KINDS = {cls.kind: (cls, cfg) for cls, cfg in ((MLP, MLPConfig), (AutoEncoder, ConvConfig), (VAE, VAEModelConfig))}


def checkpoint_config(model: nn.Module) -> dict:
    """What rebuilds ``model`` with :func:`from_config`: its kind and its config."""
    return {"kind": model.kind, **asdict(model.cfg)}


def from_config(checkpoint_cfg: dict) -> nn.Module:
    """An untrained model of the kind and config a checkpoint records."""
    values = dict(checkpoint_cfg)
    cls, cfg_cls = KINDS[values.pop("kind")]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if values.get("input") is not None:
        values["input"] = InputConfig(**values["input"])
    return cls(cfg_cls(**values))


def from_checkpoint(checkpoint: dict) -> nn.Module:
    """The model a checkpoint (``{"model": state_dict, "config": ...}``) describes, with its weights."""
    model = from_config(checkpoint["config"])
    model.load_state_dict(checkpoint["model"])
    return model


def load(path) -> nn.Module:
    """The trained model saved at ``path``; a checkpoint of another layout is one line."""
    checkpoint = load_checkpoint(path)
    try:
        return from_checkpoint(checkpoint)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        problem = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise PipelineError(f"{path} was saved by another version of this pipeline ({problem}); "
                            f"rebuild it with {rebuild_hint(path)}") from None
