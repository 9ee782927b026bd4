"""Models, each owning its loss: ``model.loss(x, y) -> (loss, stats)``.

- :class:`MLP`: the course's pixel classifier (params.yaml: 784 -> 128 -> 64 -> 10,
  dropout 0.2), reused on latent features downstream.
- :class:`AutoEncoder` and :class:`VAE` share one conv backbone (:class:`Encoder`,
  :class:`Decoder`), configured by the ``model`` section of params.yaml; the VAE adds
  only the mu/logvar heads, the reparameterization and the KL term.

Every ``stats`` dict holds detached 0-d tensors (the training loop reads them once per
epoch, not once per batch); reconstruction models report ``mse``, the per-pixel MSE on
the [0, 1] scale of the original 28x28 image, whatever the training scale.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import IMAGE_SIDE, InputConfig, to_unit
from .params import check, check_choice, from_section, top_level

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
DECODERS = ("convtranspose", "upsample")
LOSSES = ("mse", "bce")


@dataclass(frozen=True)
class MLPConfig:
    """The MLP's shape; ``hidden`` and ``dropout`` come from the ``train_classifier``
    section, which checks them (training.ClassifierConfig)."""

    in_features: int
    hidden: tuple[int, ...]
    dropout: float
    n_classes: int


class MLP(nn.Module):
    """Flatten, then Linear-ReLU-Dropout per hidden size, then the class logits."""

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
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}


@dataclass(frozen=True)
class ConvConfig:
    """The shared AE/VAE backbone: the ``model`` section plus what the data and
    the top-level ``latent_dim`` fix (output activation, image size)."""

    latent_dim: int  # the top-level key
    widths: tuple[int, ...]  # conv channels, each conv with stride 2
    hidden: int  # dense layer between the convs and the latent; 0 for none
    activation: str
    decoder: str  # "convtranspose", or "upsample": nearest upsampling + 3x3 conv
    batch_norm: bool
    out_conv: bool  # end the decoder with a 3x3 conv to 1 channel
    normalize: str  # from the input section (checked there): sigmoid output for [0, 1], tanh for [-1, 1]
    pad: int  # from the input section

    def __post_init__(self) -> None:
        check(self.latent_dim >= 1, "latent_dim", f"must be >= 1, got {self.latent_dim}")
        check(len(self.widths) >= 1 and min(self.widths) >= 1, "widths", f"need >= 1 positive widths, got {list(self.widths)}")
        check(self.hidden >= 0, "hidden", f"must be >= 0 (0 for none), got {self.hidden}")
        check_choice(self.activation, ACTIVATIONS, "activation")
        check_choice(self.decoder, DECODERS, "decoder")

    @property
    def input(self) -> InputConfig:
        return InputConfig(self.normalize, self.pad)

    def sizes(self) -> list[int]:
        """Spatial side after each stride-2 conv (k=3, p=1): 28 -> 14 -> 7 -> 4."""
        sizes = [IMAGE_SIDE + 2 * self.pad]
        for _ in self.widths:
            sizes.append((sizes[-1] - 1) // 2 + 1)
        return sizes


def _block(layers: list[nn.Module], channels: int, cfg: ConvConfig) -> list[nn.Module]:
    if cfg.batch_norm:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(ACTIVATIONS[cfg.activation]())
    return layers


class Encoder(nn.Module):
    """(B, 1, S, S) -> (B, features): stride-2 convs, flatten, optional dense layer."""

    def __init__(self, cfg: ConvConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for w in cfg.widths:
            layers += _block([nn.Conv2d(c_in, w, 3, stride=2, padding=1)], w, cfg)
            c_in = w
        side = cfg.sizes()[-1]
        layers.append(nn.Flatten())  # (B, C * s * s)
        self.features = c_in * side * side
        if cfg.hidden:
            layers += [nn.Linear(self.features, cfg.hidden), ACTIVATIONS[cfg.activation]()]
            self.features = cfg.hidden
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, features)


class Decoder(nn.Module):
    """(B, latent) -> (B, 1, S, S) logits; mirrors the encoder.

    Transposed convs (or upsample + conv) take the widths in reverse. Without
    ``out_conv`` the last one outputs the image (the course's MNIST AE: 32 -> 16 -> 8
    -> 1); with it, they output ``reversed(widths)`` and a 3x3 conv makes the image
    (the course's Fashion-MNIST AE: dense -> 4x4x128, 128 -> 64 -> 32, conv -> 1).
    """

    def __init__(self, cfg: ConvConfig):
        super().__init__()
        act = ACTIVATIONS[cfg.activation]
        sizes = cfg.sizes()
        c0, s0 = cfg.widths[-1], sizes[-1]
        dense: list[nn.Module] = []
        width = cfg.latent_dim
        if cfg.hidden:
            dense += [nn.Linear(width, cfg.hidden), act()]
            width = cfg.hidden
        dense += [nn.Linear(width, c0 * s0 * s0), act(), nn.Unflatten(1, (c0, s0, s0))]  # (B, C, s, s)
        outs = list(reversed(cfg.widths))
        outs = outs if cfg.out_conv else outs[1:] + [1]
        layers: list[nn.Module] = []
        c_in, side = c0, s0
        for i, c_out in enumerate(outs):
            target = sizes[-2 - i]
            if cfg.decoder == "convtranspose":
                # output_padding picks 7 or 8 from 4: out = 2 * in - 1 + output_padding
                layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=target - (2 * side - 1)))
            else:
                layers += [nn.Upsample(size=(target, target), mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]
            is_image = not cfg.out_conv and i == len(outs) - 1
            if not is_image:
                _block(layers, c_out, cfg)
            c_in, side = c_out, target
        if cfg.out_conv:
            layers.append(nn.Conv2d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*dense, *layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, 1, S, S) logits


def check_loss(loss: str, normalize: str) -> None:
    """A reconstruction loss that suits the data's scale (the training sections' ``loss``)."""
    check_choice(loss, LOSSES, "loss")
    check(not (loss == "bce" and normalize == "symmetric"), "loss",
          "bce needs targets in [0, 1] but input.normalize is symmetric ([-1, 1]); "
          "use loss: mse, or input.normalize: unit")


def conv_config(params: dict) -> ConvConfig:
    """The shared backbone from params: the ``model`` section, the top-level ``latent_dim``
    and the ``input`` section (output activation and image size)."""
    inp = from_section(InputConfig, params, "input")
    return from_section(ConvConfig, params, "model", latent_dim=top_level(params, "latent_dim"),
                        normalize=inp.normalize, pad=inp.pad)


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
    """Encoder, a linear map to z, decoder. ``loss`` ("mse" or "bce") comes checked
    from the stage's section (training.ReconstructionConfig)."""

    def __init__(self, cfg: ConvConfig, loss: str):
        super().__init__()
        self.cfg, self.loss_kind = cfg, loss
        self.encoder = Encoder(cfg)
        self.to_latent = nn.Linear(self.encoder.features, cfg.latent_dim)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return output_activation(self.decoder(z), self.cfg.normalize)  # (B, 1, S, S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        logits = self.decoder(self.encode(x))
        # Mean over pixels: the scale of the course's Keras/PyTorch AE losses.
        loss = reconstruction_loss(logits, x, self.loss_kind, self.cfg.normalize).mean() / x[0].numel()
        x_hat = output_activation(logits.detach(), self.cfg.normalize)
        return loss, {"loss": loss.detach(), "mse": unit_mse(x_hat, x, self.cfg.input).mean()}


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

    def __init__(self, cfg: ConvConfig, loss: str, beta: float):
        super().__init__(cfg, loss)
        self.beta = beta
        self.to_logvar = nn.Linear(self.encoder.features, cfg.latent_dim)  # to_latent is the mu head

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_latent(h), self.to_logvar(h)  # (B, latent) each

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]  # the mean is the representation

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        mu, logvar = self.encode_dist(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # (B, latent)
        logits = self.decoder(z)
        recon = reconstruction_loss(logits, x, self.loss_kind, self.cfg.normalize).mean()
        kl = kl_to_standard_normal(mu, logvar).mean()
        loss = recon + (self.beta if self.training else 1.0) * kl
        x_hat = output_activation(logits.detach(), self.cfg.normalize) if self.training else self.decode(mu)
        stats = {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(),
                 "mse": unit_mse(x_hat, x, self.cfg.input).mean()}
        return loss, stats


# ----------------------------------------------------------------------- checkpoints
def checkpoint_config(model: nn.Module) -> dict:
    """What rebuilds ``model`` with :func:`build`: its kind and constructor arguments."""
    if isinstance(model, MLP):
        return {"kind": "mlp", **asdict(model.cfg)}
    config = {"kind": "vae" if isinstance(model, VAE) else "ae", "loss": model.loss_kind, **asdict(model.cfg)}
    if isinstance(model, VAE):
        config["beta"] = model.beta
    return config


def build(config: dict) -> nn.Module:
    config = dict(config)
    kind = config.pop("kind")
    if kind == "mlp":
        config["hidden"] = tuple(config["hidden"])
        return MLP(MLPConfig(**config))
    loss, beta = config.pop("loss"), config.pop("beta", None)
    cfg = ConvConfig(**{**config, "widths": tuple(config["widths"])})
    return VAE(cfg, loss, beta) if kind == "vae" else AutoEncoder(cfg, loss)


def from_checkpoint(checkpoint: dict) -> nn.Module:
    """The model a checkpoint (``{"model": state_dict, "config": ...}``) describes, with its weights."""
    model = build(checkpoint["config"])
    model.load_state_dict(checkpoint["model"])
    return model
