"""`make exercises-report`: the course's exercises answered from real runs, after `make exercises`.

`make exercises` queues, in DVC's own queue, the β sweep (``train_vae.beta`` 0.25 and 4;
the commit's own run is β = 1) and MNIST with an 8-D latent. This waits for the queue,
reads those runs of ``--rev`` with ``dvc exp show --json`` and writes
``reports/exercises.md`` (the β table: test MSE, KL, negative ELBO and IWAE bound; the
MNIST d = 8 probes against pixels) and ``plots/exercises/beta.png`` (each β's
reconstructions and prior samples, the runs' own PNGs, read from DVC's cache by the
md5 their commit's dvc.lock records).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stages.core.cli import run
from stages.core.io import save_figure, write_text
from tools import figures, noise
from tools.experiments import SEED_KEYS, cached_png, flat, wait

REPORT = Path("reports/exercises.md")
FIGURE = Path("plots/exercises/beta.png")
IMAGES = ("plots/train_vae/reconstructions.png", "plots/train_vae/samples.png")
VAE = {"MSE (decoding mu)": "vae.test_mse", "KL (nats)": "vae.test_kl", "negative ELBO (nats)": "vae.test_nelbo",
       "IWAE bound (nats)": "vae.test_iwae_nll", "active units": "vae.active_units"}
PROBES = ("ae", "vae", "pca")


def changed(entry: dict, base: dict) -> dict:
    """The params ``entry`` sets differently from its commit's run."""
    mine, theirs = flat(entry["params"]), flat(base["params"])
    return {k: v for k, v in mine.items() if theirs.get(k) != v}


def main(argv: list[str] | None = None, root: Path = Path(".")) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the commit whose experiments to read")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    args = parser.parse_args(argv)
    entries = [e for e in wait(args.rev, args.poll, "exercises") if e["state"] == "success"]
    base = entries[0]
    betas = [(base, flat(base["params"])["train_vae.beta"])]
    betas += [(e, c["train_vae.beta"]) for e in entries[1:] if set(c := changed(e, base)) == {"train_vae.beta"}]
    betas.sort(key=lambda item: item[1])
    mnist = [e for e in entries[1:] if changed(e, base) == {"data.dataset": "mnist", "latent_dim": 8}]
    if len(betas) < 2 or not mnist:
        sys.exit("exercises: the β runs or the MNIST d = 8 run are missing; run `make exercises` first")
    commit = base["rev"][:7]
    lines = [f"# The course's exercises, from real runs of {commit}", "",
             f"## β, the parameter to tune (Fashion-MNIST, latent_dim = {base['params']['latent_dim']}, test set)", "",
             "| β | run | " + " | ".join(VAE) + " |", "|---" * (len(VAE) + 2) + "|"]
    reports = noise.seed_reports(root)
    floor_report = lambda e: (noise.report_for(noise.configuration(flat(e["params"]), SEED_KEYS), reports)  # noqa: E731
                              or (None, None))[1]
    one = flat(base["metrics"]["metrics/train_vae.json"])
    for e, beta in betas:
        m = flat(e["metrics"]["metrics/train_vae.json"])
        judged = {} if e is base else noise.judge(
            {k: m[k] - one[k] for k in VAE.values()},
            noise.floors(list(VAE.values()), floor_report(base), floor_report(e)), one)

        def cell(key: str) -> str:
            text = f"{m[key]:.5f}" if "mse" in key else f"{m[key]:.4g}"
            return text if key not in judged else f"{text} ({judged[key]['change']:+.2g}, {judged[key]['verdict']})"

        lines.append(f"| {beta:g} | {e['name']} | " + " | ".join(cell(key) for key in VAE.values()) + " |")
    lines += ["", "In brackets: the change from β = 1, judged as `make compare` judges it (tools/noise.py): "
                  "\"no floor\" where no seed report was measured at that β (`make seeds SET=\"-S train_vae.beta=4\"` "
                  "measures one); a floor is never borrowed from β = 1's seeds."]
    e = mnist[-1]
    down = flat(e["metrics"]["metrics/downstream.json"])
    pixels = flat(e["metrics"]["metrics/train_classifier.json"])
    lines += ["", f"## MNIST with an 8-D latent ({e['name']}): a classifier on the codes against one on the pixels", "",
              "| representation | logistic regression | MLP |", "|---|---|---|",
              f"| pixels (784) | {pixels['classifier.logreg_test_acc']:.4f} | {pixels['classifier.test_acc']:.4f} |",
              *(f"| {r.upper()} (8) | {down[f'downstream.{r}.logreg_test_acc']:.4f} | "
                f"{down[f'downstream.{r}.mlp_test_acc']:.4f} |" for r in PROBES),
              "", f"Best latent probe minus the same classifier on pixels: "
                  f"{down['downstream.best_latent_minus_pixels']:+.4f}."]
    write_text(root / REPORT, "\n".join(lines) + "\n")
    panels = {f"β = {beta:g}: {kind}": cached_png(e["rev"], path, root)
              for e, beta in betas for kind, path in zip(("reconstructions", "prior samples"), IMAGES)}
    save_figure(root / FIGURE, figures.png_panels(
        panels, len(IMAGES), "The VAE's β: test images and their reconstructions (left), samples from N(0, I) (right)"))
    print((root / REPORT).read_text())


if __name__ == "__main__":
    run(main)
