"""The VAE as a density model: log-likelihood bounds in nats per image.

For an image x and an encoder q(z|x) = N(mu, diag(exp(logvar))), each sample
z_j ~ q(z|x) gives a log importance weight

    log w_j = log p(x|z_j) + log N(z_j; 0, I) - log N(z_j; mu, exp(logvar)),

and from k of them:

- the negative ELBO, -mean_j log w_j (Kingma & Welling, 2014, Auto-Encoding
  Variational Bayes, eq. 3): with k = 1 this is the single-sample training loss with a
  sampled KL; the closed-form KL (:func:`~stages.core.models.kl_to_standard_normal`)
  gives the same number in expectation, with less variance;
- the IWAE bound, -(logsumexp_j log w_j - log k) (Burda, Grosse & Salakhutdinov, 2016,
  Importance Weighted Autoencoders, eq. 8, Theorem 1): never above the negative ELBO
  of the same samples (Jensen), non-increasing in k in expectation, and tending to
  -log p(x) as k grows.

p(x|z) is Bernoulli on the decoder logits. The pixels need not be binary: on
continuous [0, 1] intensities the numbers are the model's bound on its own
(unnormalized-in-x) Bernoulli likelihood, not a binarized-MNIST NLL, and do not compare
with published binarized-MNIST figures.

The noise comes from a CPU ``torch.Generator`` and is then moved to the model's device,
so a seed gives the same samples on every device.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import timing
from .device import batched
from .models import VAE

LOG_2PI = math.log(2 * math.pi)
DECODE_CHUNK = 8192  # latent samples decoded per call: bounded memory whatever k and B


def log_weights(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                log_px_given_z: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                k: int, generator: torch.Generator) -> torch.Tensor:
    """log w_j for k samples z_j ~ N(mu, exp(logvar)) per row, (k, B).

    ``log_px_given_z(z, x)`` takes z of shape (k, B, d) and x of shape (B, ...) and
    returns log p(x_i | z_ji) of shape (k, B). ``generator`` is a CPU generator.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)  # (k, B, d)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, d)
    log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)  # (k, B)
    # (z - mu) / sigma is eps exactly: no cancellation when sigma is tiny
    log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)  # (k, B)
    return log_px_given_z(z, x) + log_prior - log_q  # (k, B)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over pixels, (N,), for logits and x of shape (N, ...).

    x in [0, 1]; not binarized: on continuous targets this is -BCE, the Bernoulli
    likelihood the VAE trains on, not a normalized density over continuous images.
    """
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def vae_log_weights(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator,
                    chunk: int = DECODE_CHUNK) -> torch.Tensor:
    """log w_j for ``model``'s encoder and Bernoulli decoder, (k, B).

    x: (B, 1, S, S) in [0, 1] on the model's device. The k * B latent samples are decoded
    ``chunk`` rows at a time, so memory stays bounded whatever k and B; the samples
    themselves are drawn at once, so ``chunk`` changes no number beyond float rounding.
    Put the model in eval mode (batch norm must not use batch statistics), and wrap the
    call in ``torch.no_grad()`` unless you need gradients.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")

    def log_px_given_z(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n_samples, batch, _ = z.shape
        z = z.reshape(n_samples * batch, -1)  # (k * B, d), sample-major: row r is image r % B
        out = []
        for start in range(0, len(z), chunk):
            rows = torch.arange(start, min(start + chunk, len(z)), device=x.device)
            logits = model.decoder(z[rows])  # (rows, 1, S, S)
            out.append(bernoulli_log_likelihood(logits, x[rows % batch]))  # (rows,)
        return torch.cat(out).reshape(n_samples, batch)  # (k, B)

    mu, logvar = model.encode_dist(x)  # (B, d) each
    return log_weights(x, mu, logvar, log_px_given_z, k, generator)


def negative_elbo(logw: torch.Tensor) -> torch.Tensor:
    """-mean_j log w_j, (B,), from log weights (k, B); an estimate of -ELBO in nats."""
    return -logw.mean(0)


def iwae_nll(logw: torch.Tensor) -> torch.Tensor:
    """-(logsumexp_j log w_j - log k), (B,), from log weights (k, B): the IWAE bound on
    -log p(x) in nats, never below the true value in expectation."""
    return -(torch.logsumexp(logw, 0) - math.log(logw.shape[0]))


def bounds_per_image(model: VAE, x: torch.Tensor, k: int, seed: int, device: torch.device) -> torch.Tensor:
    """The IWAE bound and the negative ELBO of each image of ``x`` (on the [0, 1] scale,
    any device), from the same ``k`` draws per image: (N, 2) in nats, on the CPU, in
    float64. The draws come from a CPU generator seeded with ``seed``; images go through
    in batches of about ``DECODE_CHUNK`` decoded samples. The model's weights are put in
    channels-last layout (and left so): its decoder runs about a third faster so, and
    every caller (train_vae, ood) then bounds with the same kernels."""
    model.eval()
    model.to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(seed)

    def bounds(xb: torch.Tensor) -> torch.Tensor:
        logw = vae_log_weights(model, xb, k, generator)  # (k, B)
        return torch.stack([iwae_nll(logw), negative_elbo(logw)], 1)  # (B, 2)

    with timing.phase("bound"):
        return batched(bounds, x, device, max(1, DECODE_CHUNK // k)).double()
