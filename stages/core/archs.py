"""The autoencoders' architectures by name (``model.arch``): what the AE and the VAE are made of.

Each architecture gives three parts, built in this order so a seed fixes every weight:
an encoder, (B, 1, S, S) -> h; a head, h -> (B, latent_dim), the AE's z or one of the
VAE's mu and logvar; a decoder, (B, latent_dim) -> (B, 1, S, S) logits (the output
activation follows the input scale: sigmoid for [0, 1], tanh for [-1, 1]).

- ``backbone``: the pipeline's conv stack, shaped by the ``model`` section's keys;
- ``mnist_2d``, ``keras_fashion``, ``keras_fashion_upsample``: the course's backbones,
  that stack with the course's values (:data:`PRESETS`);
- ``guide12`` and ``keras_practice``: the course's two models the stack cannot express,
  written out layer by layer. The Keras practice's latent is a 7x7x64 feature map: its
  head flattens it, so every later stage sees a vector of 3,136 numbers, as the course
  flattens its codes for PCA and t-SNE, and the decoder folds it back.
"""
from __future__ import annotations

from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
DECODERS = ("convtranspose", "upsample")  # the backbone's: transposed convs, or nearest upsampling + 3x3 conv

# The course's backbones, as the ``model`` keys they set over params.yaml's
# (builders.conv_config applies them).
PRESETS = {
    # MNIST AE, 2-D latent: conv 8 -> 16 -> 32 (stride 2, tanh), dense 64, latent;
    # decoder: transposed convs 32 -> 16 -> 8 -> 1
    "mnist_2d": dict(widths=(8, 16, 32), hidden=64, activation="tanh", decoder="convtranspose",
                     batch_norm=False, out_conv=False),
    # Fashion-MNIST AE (course: 32x32, input.pad 2): conv 32 -> 64 -> 128 (stride 2, ReLU),
    # dense latent; decoder: dense -> 4x4x128, transposed convs to 128, 64, 32, 3x3 conv to 1
    "keras_fashion": dict(widths=(32, 64, 128), hidden=0, activation="relu", decoder="convtranspose",
                          batch_norm=False, out_conv=True),
    # ...its alternative decoder: upsample + conv + batch norm + LeakyReLU(0.2)
    "keras_fashion_upsample": dict(widths=(32, 64, 128), hidden=0, activation="leaky_relu", decoder="upsample",
                                   batch_norm=True, out_conv=True),
}


def _block(layers: list[nn.Module], channels: int, cfg) -> list[nn.Module]:
    if cfg.batch_norm:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(ACTIVATIONS[cfg.activation]())
    return layers


class Encoder(nn.Module):
    """backbone: (B, 1, S, S) -> (B, features): stride-2 convs, flatten, optional dense layer."""

    def __init__(self, cfg):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for w in cfg.widths:
            layers += _block([nn.Conv2d(c_in, w, 3, stride=2, padding=1)], w, cfg)
            c_in = w
        layers.append(nn.Flatten())  # (B, C * s * s)
        if cfg.hidden:
            layers += [nn.Linear(backbone_features(cfg, dense=False), cfg.hidden), ACTIVATIONS[cfg.activation]()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)  # (B, features)


def backbone_features(cfg, dense: bool = True) -> int:
    """Numbers per image out of the backbone's encoder: its dense layer, or the last conv's map."""
    return cfg.hidden if dense and cfg.hidden else cfg.widths[-1] * cfg.sizes()[-1] ** 2


class Decoder(nn.Module):
    """backbone: (B, latent) -> (B, 1, S, S) logits; mirrors the encoder.

    Transposed convs (or upsample + conv) take the widths in reverse. Without
    ``out_conv`` the last one outputs the image (the course's MNIST AE: 32 -> 16 -> 8
    -> 1); with it, they output ``reversed(widths)`` and a 3x3 conv makes the image
    (the course's Fashion-MNIST AE: dense -> 4x4x128, 128 -> 64 -> 32, conv -> 1).
    """

    def __init__(self, cfg):
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

    def forward(self, z):
        return self.net(z)  # (B, 1, S, S) logits


class Backbone:
    """The ``model`` section's conv stack (and the course's presets of it)."""

    encoder = Encoder
    decoder = Decoder

    @staticmethod
    def head(cfg, variational: bool) -> nn.Module:
        return nn.Linear(backbone_features(cfg), cfg.latent_dim)  # (B, latent)

    @staticmethod
    def latent_shape(cfg) -> tuple[int, ...] | None:
        return None  # any latent_dim


class Guide12:
    """Guide 12's PyTorch AE for Fashion-MNIST (course: input.normalize symmetric, tanh out).

    One valid 3x3 conv and a 2x2 max-pool, then a dense bottleneck of ``latent_dim``
    numbers (the guide's is 128) behind a ReLU; a 6x6 transposed conv back to the image.
    The VAE's mu and logvar are the same dense layer without the ReLU (a mean must be
    free to be negative).
    """

    @staticmethod
    def encoder(cfg) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),  # (B, 16, 26, 26): valid conv, 28 -> 26
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 16, 13, 13)
            nn.Dropout(0.2),
            nn.Flatten(),  # (B, 2704)
        )

    @staticmethod
    def _side(cfg) -> int:
        return (cfg.sizes()[0] - 2) // 2  # 13 for 28x28 (15 for 32x32)

    @classmethod
    def head(cls, cfg, variational: bool) -> nn.Module:
        linear = nn.Linear(16 * cls._side(cfg) ** 2, cfg.latent_dim)  # (B, latent): 2704 -> 128 in the guide
        return linear if variational else nn.Sequential(linear, nn.ReLU())

    @classmethod
    def decoder(cls, cfg) -> nn.Module:
        side = cls._side(cfg)
        return nn.Sequential(
            nn.Linear(cfg.latent_dim, 16 * side * side),  # (B, 2704)
            nn.ReLU(),
            nn.Unflatten(1, (16, side, side)),  # (B, 16, 13, 13)
            nn.ConvTranspose2d(16, 1, kernel_size=6, stride=2, padding=1),  # (B, 1, 28, 28): (13-1)*2 - 2 + 6
        )

    @staticmethod
    def latent_shape(cfg) -> tuple[int, ...] | None:
        return None


class KerasPractice:
    """The Keras practice's MNIST AE (course: input.normalize unit, BCE, sigmoid out): the
    code is the encoder's 7x7x64 feature map itself, 3,136 numbers, four times the image.

    The VAE puts a 1x1 conv on that map for each of mu and logvar: a Gaussian per
    position and channel.
    """

    @staticmethod
    def encoder(cfg) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),  # (B, 32, 28, 28): 'same'
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1),  # (B, 64, 14, 14)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7): the latent
        )

    @staticmethod
    def head(cfg, variational: bool) -> nn.Module:
        flatten = nn.Flatten()  # (B, 3136)
        return nn.Sequential(nn.Conv2d(64, 64, 1), flatten) if variational else flatten

    @staticmethod
    def decoder(cfg) -> nn.Module:
        return nn.Sequential(
            nn.Unflatten(1, KerasPractice.latent_shape(cfg)),  # (B, 64, 7, 7)
            nn.Conv2d(64, 64, 3, padding=1),  # (B, 64, 7, 7)
            nn.ReLU(),
            nn.Upsample(scale_factor=2),  # (B, 64, 14, 14), nearest
            nn.Conv2d(64, 32, 3, padding=1),  # (B, 32, 14, 14)
            nn.ReLU(),
            nn.Upsample(scale_factor=2),  # (B, 32, 28, 28)
            nn.Conv2d(32, 1, 3, padding=1),  # (B, 1, 28, 28) logits
        )

    @staticmethod
    def latent_shape(cfg) -> tuple[int, ...] | None:
        side = cfg.sizes()[0] // 4
        return (64, side, side)  # (C, H, W): 64 x 7 x 7


def latent_text(shape: tuple[int, ...]) -> str:
    """A spatial latent's size as the course writes it: (64, 7, 7) -> "7x7x64"."""
    return "x".join(map(str, shape[1:] + shape[:1]))


ARCHS = {"backbone": Backbone, **{name: Backbone for name in PRESETS}, "guide12": Guide12,
         "keras_practice": KerasPractice}
