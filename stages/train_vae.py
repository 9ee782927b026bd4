"""train_vae: the convolutional VAE on the same backbone as the AE.

Reads data/processed/. Writes models/vae.pt, metrics/train_vae.json (the headline:
test MSE decoding mu, KL, negative ELBO and IWAE bound in nats, active latent units),
reports/train_vae.json (every val and test number, the best epoch) and plots/train_vae/: history.csv
(reconstruction, KL and total for train and val, lr; with beta != 1 the train total is the
beta objective and the val total the negative ELBO, and train mse is of the sampled z's
reconstruction, val mse of the mean's), curves.png, reconstructions.png,
samples.png (decoded z ~ N(0, I)) and latent_histograms.png (test-set means against
the N(0, 1) prior).

Loss per image: reconstruction summed over pixels + beta * KL. The course weights the
mean-over-pixels BCE by 500 and adds the KL; relative to the summed BCE over D pixels
that is beta = D / 500 (1.57 for 28x28). See README, "VAE loss and beta". On val and
test the loss is the negative ELBO (beta = 1, z sampled), the best epoch is chosen on
it, and with the Bernoulli decoder (``loss: bce``) it and the IWAE bound on -log p(x)
(``iwae_k`` samples per image, on the first ``iwae_images`` images of val and test) are
in nats per image: see README, "The VAE as a density model".
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from stages.core import plots
from stages.core.data import load_tensors, to_unit
from stages.core.device import batched, reconstructions, resolve_device, seed_everything
from stages.core.io import fmt_metrics, save_checkpoint, save_figure, write_csv, write_json
from stages.core.likelihood import bounds_per_image
from stages.core.models import VAE, checkpoint_config, conv_config
from stages.core.params import check, from_section, run, top_level
from stages.core.training import ReconstructionConfig, train_and_test

PROCESSED_DIR = Path("data/processed")
MODEL = Path("models/vae.pt")
METRICS = Path("metrics/train_vae.json")
REPORT = Path("reports/train_vae.json")
PLOTS_DIR = Path("plots/train_vae")
# A latent dimension is active when its posterior mean varies across images:
# Cov_x(E[z|x]) > 0.01 (Burda et al., 2016, section 5.2), over the test images.
ACTIVE_VARIANCE = 0.01


@dataclass(frozen=True)
class VAEConfig(ReconstructionConfig):
    """The train_vae section: the shared training keys, ``loss``, the KL weight and
    how many prior samples to draw."""

    beta: float  # weight of the KL term; 1 is the ELBO
    n_samples: int  # images decoded from the prior for samples.png
    iwae_k: int  # importance samples per image for the IWAE bound
    iwae_images: int  # the IWAE bound on the first this many val and test images

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.n_samples >= 1, "n_samples", f"must be >= 1, got {self.n_samples}")
        check(self.iwae_k >= 1, "iwae_k", f"must be >= 1, got {self.iwae_k}")
        check(self.iwae_images >= 1, "iwae_images", f"must be >= 1, got {self.iwae_images}")


def iwae_bound(model: VAE, x: torch.Tensor, cfg: VAEConfig, device: torch.device) -> dict:
    """The IWAE bound on -log p(x) over the first ``iwae_images`` images of x, in nats per
    image, and how much tighter it is than the ELBO of the same images and draws (>= 0
    for every image, by Jensen's inequality)."""
    x = x[: cfg.iwae_images]
    iwae, nelbo = bounds_per_image(model, x, cfg.iwae_k, cfg.seed, device).mean(0).tolist()
    return {"iwae_nll": iwae, "iwae_gain": nelbo - iwae, "iwae_images": len(x)}


def build(params: dict) -> tuple[VAE, VAEConfig]:
    """The untrained model, initialized from ``train_vae.seed``, and its training config
    (benchmarks/bench.py builds it here too)."""
    conv = conv_config(params)
    cfg = from_section(VAEConfig, params, "train_vae", normalize=conv.normalize)
    seed_everything(cfg.seed)
    return VAE(conv, cfg.loss, cfg.beta), cfg


def main(params: dict, root: Path = Path(".")) -> dict:
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    model, cfg = build(params)
    model = model.to(device)
    conv = model.cfg
    data, _ = load_tensors(root / PROCESSED_DIR, conv.input)
    history, report = train_and_test(model, data, cfg, "train_vae")
    metrics = {"vae": {"test_mse": report["test_mse"], "test_kl": report["test_kl"]}}
    if cfg.loss == "bce":  # a Bernoulli likelihood: the bounds are in nats
        iwae_start = time.perf_counter()
        for split in ("val", "test"):
            report[f"{split}_nelbo"] = report[f"{split}_loss"]
            report.update({f"{split}_{k}": v for k, v in iwae_bound(model, data[split][0], cfg, device).items()})
        report["iwae_k"] = cfg.iwae_k
        metrics["vae"].update(test_nelbo=report["test_nelbo"], test_iwae_nll=report["test_iwae_nll"])
        print(f"train_vae: IWAE bound, k={cfg.iwae_k}: val {report['val_iwae_nll']:.2f}, "
              f"test {report['test_iwae_nll']:.2f} nats ({time.perf_counter() - iwae_start:.1f} s)")

    model.eval()
    z = torch.randn(cfg.n_samples, conv.latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    samples = to_unit(batched(model.decode, z, device), conv.input)
    mu = batched(model.encode, data["test"][0], device).numpy()
    variance = mu.astype("float64").var(axis=0)
    report.update(active_units=int((variance > ACTIVE_VARIANCE).sum()),
                  mu_variance={f"z{j}": float(v) for j, v in enumerate(variance)})
    metrics["vae"]["active_units"] = report["active_units"]

    save_checkpoint(root / MODEL, model, checkpoint_config(model))
    write_json(root / METRICS, metrics)
    write_json(root / REPORT, report)
    write_csv(root / PLOTS_DIR / "history.csv", history)
    save_figure(root / PLOTS_DIR / "curves.png", plots.curves(history, "train_vae"))
    save_figure(root / PLOTS_DIR / "reconstructions.png",
                plots.rows_of_images(reconstructions(model, data["test"][0][:16]), "VAE (decoding mu), test set"))
    save_figure(root / PLOTS_DIR / "samples.png", plots.image_grid(samples, suptitle="VAE samples, z ~ N(0, I)"))
    save_figure(root / PLOTS_DIR / "latent_histograms.png", plots.latent_histograms(mu))
    summary = {k: v for k, v in report.items() if k != "mu_variance"}
    print(f"train_vae: {fmt_metrics(summary)} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main)
