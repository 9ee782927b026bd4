"""From params to an untrained, seeded model and its training config.

The one place where params.yaml's sections meet the model classes: train_classifier and
downstream build the MLP here, train_ae and train_vae their models, and so does
benchmarks/bench.py. Params are checked before any data is read.
"""
from __future__ import annotations

from dataclasses import fields, replace
from math import prod

from .archs import ARCHS, PRESETS, latent_text
from .config import AEConfig, ClassifierConfig, InputConfig, VAEConfig, check_loss_scale
from .device import seed_everything
from .models import MLP, VAE, AutoEncoder, ConvConfig, MLPConfig, VAEModelConfig
from .params import check, from_section, top_level


def input_config(params: dict) -> InputConfig:
    return from_section(InputConfig, params, "input")


def classifier(params: dict, in_features: int, n_classes: int, inp: InputConfig | None
               ) -> tuple[MLP, ClassifierConfig]:
    """The MLP of ``train_classifier`` on ``in_features`` inputs (pixels fed with ``inp``, or codes)."""
    cfg = from_section(ClassifierConfig, params, "train_classifier")
    seed_everything(cfg.seed)
    return MLP(MLPConfig(in_features, cfg.hidden, cfg.dropout, n_classes, inp)), cfg


def conv_config(params: dict, section: str, loss: str) -> ConvConfig:
    """The AE's config: the ``model`` section with a course preset's values over its keys,
    ``latent_dim``, the input transform and ``<section>.loss``, checked against the
    input's scale and against a latent whose size the architecture fixes."""
    inp = input_config(params)
    check_loss_scale(section, loss, inp)
    cfg = from_section(ConvConfig, params, "model", latent_dim=top_level(params, "latent_dim", int),
                       input=inp, loss=loss)
    cfg = replace(cfg, **PRESETS.get(cfg.arch, {}))
    shape = ARCHS[cfg.arch].latent_shape(cfg)
    if shape is not None:
        check(cfg.latent_dim == prod(shape), "latent_dim",
              f"model.arch {cfg.arch}'s latent is its {latent_text(shape)} feature map, {prod(shape)} numbers, not {cfg.latent_dim}; set latent_dim: {prod(shape)} "
              f"(dvc exp run -S model.arch={cfg.arch} -S latent_dim={prod(shape)})")
    return cfg


def autoencoder(params: dict) -> tuple[AutoEncoder, AEConfig]:
    cfg = from_section(AEConfig, params, "train_ae")
    arch = conv_config(params, "train_ae", cfg.loss)
    seed_everything(cfg.seed)
    return AutoEncoder(arch), cfg


def vae(params: dict) -> tuple[VAE, VAEConfig]:
    """The VAE and its training config: ``train_vae`` holds the keys of both, ``beta`` the model's."""
    cfg = from_section(VAEConfig, params, "train_vae", others=["beta"])
    arch = from_section(VAEModelConfig, params, "train_vae", others=[f.name for f in fields(VAEConfig)],
                        **vars(conv_config(params, "train_vae", cfg.loss)))
    seed_everything(cfg.seed)
    return VAE(arch), cfg
