"""Likelihood bounds: exact on a linear-Gaussian model, Jensen and the k-ordering on a
tiny VAE, the Gaussian terms and the Bernoulli likelihood against torch.distributions,
and determinism (seeds, chunking).

The linear-Gaussian model p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) has the marginal
N(b, W W^T + s^2 I) and, with orthogonal columns in W, a diagonal Gaussian posterior,
so every bound has a closed-form target. Everything runs on the CPU in a few seconds.
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import vae_cfg
import torch.nn.functional as F
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from stages.core.likelihood import bernoulli_log_likelihood, iwae_nll, log_weights, negative_elbo, vae_log_weights
from stages.core.models import VAE, kl_to_standard_normal

D, LATENT, S_NOISE = 5, 2, 0.8  # toy: data dim, latent dim, observation noise


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LinearGaussian:
    """p(z) = N(0, I_2), p(x|z) = N(Wz + b, s^2 I_5) in float64, W with orthogonal columns."""

    def __init__(self):
        gen = seeded(0)
        q, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=gen, dtype=torch.float64))
        self.scales = torch.tensor([1.5, 0.7], dtype=torch.float64)
        self.W = q * self.scales  # (D, d); W^T W = diag(scales^2)
        self.b = torch.randn(D, generator=gen, dtype=torch.float64)
        self.marginal = MultivariateNormal(self.b, self.W @ self.W.T + S_NOISE**2 * torch.eye(D, dtype=torch.float64))
        self.x = self.b + torch.randn(6, D, generator=gen, dtype=torch.float64) @ self.marginal.scale_tril.T  # (B, D)
        self.log_px = self.marginal.log_prob(self.x)  # (B,)

    def log_px_given_z(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return Normal(z @ self.W.T + self.b, S_NOISE).log_prob(x).sum(-1)  # (k, B, D) -> (k, B)

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z|x) = N(mu, diag(var)): precision I + W^T W / s^2, mean var * W^T (x - b) / s^2."""
        var = 1 / (1 + self.scales**2 / S_NOISE**2)  # (d,)
        mu = var * ((self.x - self.b) @ self.W) / S_NOISE**2  # (B, d)
        return mu, var.log().expand_as(mu)


@pytest.fixture(scope="module")
def toy() -> LinearGaussian:
    return LinearGaussian()


@pytest.fixture(scope="module")
def vae() -> VAE:
    cfg = vae_cfg(latent_dim=2, widths=(4, 8), hidden=16, batch_norm=False, loss="bce")
    with torch.random.fork_rng():  # seed the weights without touching other tests' RNG
        torch.manual_seed(0)
        model = VAE(cfg).eval()
    # At init the decoder barely depends on z, so the posterior is the prior, q is close to
    # it and every bound agrees within noise. Scaling the decoder's input weights makes
    # p(x|z) sharp in z: q is then far from the posterior and the bounds separate clearly.
    with torch.no_grad():
        model.decoder.net[0].weight.mul_(30.0)
    return model


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.rand(48, 1, 28, 28, generator=seeded(1))  # continuous [0, 1] images


# ----------------------------------------------------------------- linear-Gaussian toy
@pytest.mark.parametrize("k", [1, 5, 100])
def test_exact_posterior_gives_the_exact_log_likelihood_for_any_k(toy, k):
    mu, logvar = toy.posterior()
    logw = log_weights(toy.x, mu, logvar, toy.log_px_given_z, k, seeded(k))
    assert logw.shape == (k, len(toy.x))
    # With q = p(z|x), w = p(x) for every z: zero-variance weights, all bounds tight.
    torch.testing.assert_close(iwae_nll(logw), -toy.log_px, atol=1e-6, rtol=0)
    torch.testing.assert_close(negative_elbo(logw), -toy.log_px, atol=1e-6, rtol=0)


def test_prior_as_proposal_iwae_converges_and_elbo_misses_by_the_kl(toy):
    k = 100_000  # about 0.2 s; the worst of the six images keeps a 0.02 relative error
    mu_post, logvar_post = toy.posterior()
    zeros = torch.zeros_like(mu_post)
    logw = log_weights(toy.x, zeros, zeros, toy.log_px_given_z, k, seeded(0))  # q = p(z) = N(0, I)
    # the log of a mean of k weights: its error is about the weights' relative standard error
    w = (logw - logw.max(0).values).exp()  # (k, B)
    rel_stderr = w.std(0) / w.mean(0) / math.sqrt(k)
    assert rel_stderr.max() < 0.025  # k is large enough for this proposal
    assert ((iwae_nll(logw) - -toy.log_px).abs() < 5 * rel_stderr).all()
    # -ELBO = -log p(x) + KL(q || p(z|x)), up to Monte Carlo error
    gap = kl_divergence(Normal(0.0, torch.ones_like(mu_post)), Normal(mu_post, (logvar_post / 2).exp())).sum(-1)
    assert gap.min() > 0.3  # the setup separates the bounds
    stderr = logw.std(0) / math.sqrt(k)
    assert ((negative_elbo(logw) - (-toy.log_px + gap)).abs() < 5 * stderr).all()
    assert (negative_elbo(logw) > iwae_nll(logw) + 0.2).all()


def test_log_weights_draws_from_the_cpu_generator_and_matches_torch_distributions():
    gen = seeded(3)
    mu, logvar = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    x = torch.randn(4, 7, generator=gen)
    seen = []

    def log_px_given_z(z: torch.Tensor, x_: torch.Tensor) -> torch.Tensor:
        seen.append((z, x_))
        return z.sum(-1) + x_.sum(-1)  # (k, B), any function of both

    logw = log_weights(x, mu, logvar, log_px_given_z, 6, seeded(11))
    z = mu + (logvar / 2).exp() * torch.randn(6, 4, 3, generator=seeded(11))  # (k, B, d)
    (z_seen, x_seen), = seen
    assert z_seen.shape == (6, 4, 3) and x_seen is x
    torch.testing.assert_close(z_seen, z)
    expected = (z.sum(-1) + x.sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
                - Normal(mu, (logvar / 2).exp()).log_prob(z).sum(-1))
    torch.testing.assert_close(logw, expected, atol=1e-5, rtol=1e-5)


def test_sampled_kl_averages_to_the_closed_form_kl():
    gen = seeded(4)
    mu, logvar = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    k = 20000
    logw = log_weights(torch.zeros(5, 1), mu, logvar, lambda z, x: torch.zeros(z.shape[:2]), k, seeded(5))
    # with log p(x|z) = 0, -log w = log q(z) - log p(z), whose mean over q is KL(q || p)
    stderr = logw.std(0) / math.sqrt(k)
    assert ((negative_elbo(logw) - kl_to_standard_normal(mu, logvar)).abs() < 5 * stderr).all()


def test_bad_k_or_chunk_is_refused(vae, pixels):
    with pytest.raises(ValueError, match="k must be >= 1"):
        log_weights(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1), lambda z, x: z.sum(-1), 0, seeded(0))
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        vae_log_weights(vae, pixels[:2], 1, seeded(0), chunk=0)


# ------------------------------------------------------------------------- tiny VAE
@torch.no_grad()
def test_vae_log_weights_decode_each_sample_against_its_own_image(vae, pixels):
    x, k = pixels[:6], 4
    logw = vae_log_weights(vae, x, k, seeded(2), chunk=5)  # chunks straddle samples
    mu, logvar = vae.encode_dist(x)
    z = mu + (logvar / 2).exp() * torch.randn(k, *mu.shape, generator=seeded(2))  # (k, B, d)
    log_px = torch.stack([bernoulli_log_likelihood(vae.decoder(z[j]), x) for j in range(k)])  # (k, B)
    expected = log_px + Normal(0.0, 1.0).log_prob(z).sum(-1) - Normal(mu, (logvar / 2).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(logw, expected, atol=1e-3, rtol=1e-5)


@torch.no_grad()
def test_iwae_is_below_the_elbo_per_image_and_falls_with_k(vae, pixels):
    nll = {}
    for k in (1, 10, 100):
        logw = vae_log_weights(vae, pixels, k, seeded(0))
        assert logw.shape == (k, len(pixels))
        iwae, elbo = iwae_nll(logw), negative_elbo(logw)
        assert (iwae <= elbo + 1e-4).all()  # Jensen, per image, same samples
        if k == 1:
            torch.testing.assert_close(iwae, elbo)
        nll[k] = iwae.mean().item()
    assert nll[1] - nll[10] > 1.0  # the model separates the bounds (about 40 nats here)
    assert nll[10] <= nll[1] + 1e-3 and nll[100] <= nll[10] + 1e-3


@torch.no_grad()
def test_same_seed_same_numbers_and_chunking_changes_nothing(vae, pixels):
    x = pixels[:8]
    first = vae_log_weights(vae, x, 10, seeded(7))
    assert torch.equal(first, vae_log_weights(vae, x, 10, seeded(7)))
    assert not torch.equal(first, vae_log_weights(vae, x, 10, seeded(8)))
    for chunk in (1, 7, 8, 10**9):
        torch.testing.assert_close(vae_log_weights(vae, x, 10, seeded(7), chunk=chunk), first)


# ---------------------------------------------------------------- Bernoulli likelihood
def test_bernoulli_log_likelihood_is_minus_bce_and_the_bernoulli_log_prob():
    gen = seeded(6)
    logits = 3 * torch.randn(5, 1, 4, 4, generator=gen)
    x = torch.rand(5, 1, 4, 4, generator=gen)  # continuous targets are allowed
    got = bernoulli_log_likelihood(logits, x)
    assert got.shape == (5,)
    torch.testing.assert_close(got, -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3)))
    binary = (x > 0.5).float()
    torch.testing.assert_close(bernoulli_log_likelihood(logits, binary),
                               Bernoulli(logits=logits).log_prob(binary).sum((1, 2, 3)))
