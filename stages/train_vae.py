"""train_vae: the convolutional VAE on the same backbone as the AE.

Loss per image: reconstruction summed over pixels + beta * KL (the course's 500 * mean
BCE + KL is beta = 784 / 500; docs/vae.md, "VAE loss and β"). On val and test the loss is
the negative ELBO (beta = 1), the best epoch is chosen on it, and with the Bernoulli
decoder it and the IWAE bound are in nats per image (docs/vae.md, "The VAE as a
density model"). The headline negative ELBO is on the same images and draws as the IWAE bound
beside it. The per-image bounds of the test images (the only ones bounded) are kept for
the ood stage, which would otherwise compute them again.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from stages.core import builders, paths, plots
from stages.core.device import batched, reconstructions, resolve_device
from stages.core.inputs import load_tensors, to_unit
from stages.core.cli import run
from stages.core.io import fmt_metrics, save_arrays, save_checkpoint, save_figure, write_json
from stages.core.likelihood import bounds_per_image
from stages.core.models import ACTIVE_VARIANCE, checkpoint_config
from stages.core.params import top_level
from stages.core.training import live_log, train_and_test

# Active units (models.ACTIVE_VARIANCE) are counted over the test images, as Burda et al. do.


def iwae_bound(bounds: torch.Tensor) -> dict:
    """The mean IWAE bound on -log p(x) of per-image ``bounds`` (N, 2: IWAE, negative ELBO
    of the same draws), in nats per image, the negative ELBO on those same images, and
    how much tighter the bound is (>= 0 for every image, by Jensen's inequality). The
    negative ELBO of the whole split, which chose the best epoch, is ``<split>_loss``."""
    iwae, nelbo = bounds.mean(0).tolist()
    return {"iwae_nll": iwae, "nelbo": nelbo, "iwae_gain": nelbo - iwae, "iwae_images": len(bounds)}


def main(params: dict, root: Path = Path(".")) -> dict:
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    model, cfg = builders.vae(params)
    model = model.to(device)
    conv = model.cfg
    data, _ = load_tensors(root / paths.PROCESSED_DIR, conv.input)
    with live_log(root / paths.VAE_PLOTS) as live:  # each epoch, as it goes
        history, report = train_and_test(model, data, cfg, "train_vae", live=live)
    metrics = {"vae": {"test_mse": report["test_mse"], "test_kl": report["test_kl"]}}
    test_bounds = torch.zeros(0, 2, dtype=torch.float64)
    if cfg.loss == "bce":  # a Bernoulli likelihood: the bounds are in nats
        # The test images only: each image's bound costs iwae_k decodes, and val's would
        # choose nothing (the best epoch is chosen on the whole val split's negative ELBO).
        iwae_start = time.perf_counter()
        test_bounds = bounds_per_image(model, data["test"][0][: cfg.iwae_images], cfg.iwae_k, cfg.seed, device)
        report.update({f"test_{k}": v for k, v in iwae_bound(test_bounds).items()}, iwae_k=cfg.iwae_k)
        metrics["vae"].update(test_nelbo=report["test_nelbo"], test_iwae_nll=report["test_iwae_nll"])
        print(f"train_vae: IWAE bound, k={cfg.iwae_k}: test {report['test_iwae_nll']:.2f} nats "
              f"({time.perf_counter() - iwae_start:.1f} s)")
    model = model.to(memory_format=torch.contiguous_format)  # the layout a loaded checkpoint has

    model.eval()
    z = torch.randn(cfg.n_samples, conv.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    samples = to_unit(batched(model.decode, z, device), conv.input)
    mu = batched(model.encode, data["test"][0], device).numpy()
    variance = mu.astype("float64").var(axis=0)
    report.update(active_units=int((variance > ACTIVE_VARIANCE).sum()),
                  mu_variance={f"z{j}": float(v) for j, v in enumerate(variance)})
    metrics["vae"]["active_units"] = report["active_units"]

    save_checkpoint(root / paths.VAE, model.state_dict(), checkpoint_config(model))
    save_arrays(root / paths.VAE_BOUNDS, iwae_nll=test_bounds[:, 0].numpy(), nelbo=test_bounds[:, 1].numpy(),
                k=np.array(cfg.iwae_k), seed=np.array(cfg.seed))
    write_json(root / paths.VAE_METRICS, metrics)
    write_json(root / paths.VAE_REPORT, report)
    save_figure(root / paths.VAE_PLOTS / "curves.png", plots.curves(history, {
        "loss": "nats per image (train: beta-weighted)", "recon": "-log p(x|z), nats per image",
        "kl": "KL to N(0, I), nats per image", "mse": "MSE per pixel on [0, 1]"}, "train_vae"))
    save_figure(root / paths.VAE_PLOTS / "reconstructions.png",
                plots.rows_of_images(reconstructions(model, data["test"][0][:16]), "VAE (decoding mu), test set"))
    save_figure(root / paths.VAE_PLOTS / "samples.png", plots.image_grid(samples, suptitle="VAE samples, z ~ N(0, I)"))
    save_figure(root / paths.VAE_PLOTS / "latent_histograms.png", plots.latent_histograms(mu))
    summary = {k: v for k, v in report.items() if k != "mu_variance"}
    print(f"train_vae: {fmt_metrics(summary)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main, stage=True)
