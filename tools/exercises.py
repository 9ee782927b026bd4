"""The course's exercises from real runs: `make exercises` queues the β runs (0.25 and 4; the
commit's own run is β = 1) and MNIST at d = 8; `make exercises-report` writes
reports/exercises.md (per β the VAE's test numbers, each change from β = 1 judged as `make
compare` judges it; the MNIST probes against pixels), plots/exercises/beta.png (each β's
reconstructions and prior samples, read from DVC's cache) and reports/exercises.json: each run
as a row, its numbers and its code state (tools/study.py); a run at other code than the
workspace's is stale, named under the report and in no table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from stages.core.cli import run
from tools import figures, noise, study
from tools.experiments import SEED, flat, run_file
from tools.study import Study

STUDY = Study("exercises", runs={"beta-0.25": {"train_vae.beta": 0.25}, "beta-4": {"train_vae.beta": 4},
                                 "mnist-d8": {"data.dataset": "mnist", "latent_dim": 8}})
IMAGES = ("plots/train_vae/reconstructions.png", "plots/train_vae/samples.png")
VAE = {"MSE (decoding mu)": "vae.test_mse", "KL (nats)": "vae.test_kl", "negative ELBO (nats)": "vae.test_nelbo",
       "IWAE bound (nats)": "vae.test_iwae_nll", "active units": "vae.active_units"}
PROBES = ["classifier.logreg_test_acc", "classifier.test_acc", "downstream.best_latent_minus_pixels",
          *(f"downstream.{r}.{c}_test_acc" for r in study.REPS for c in ("logreg", "mlp"))]


def rows(runs: dict, now: dict, root: Path) -> pd.DataFrame:
    """Each run ({name: entry}) as a row: the run, its params the study sets, its numbers (VAE,
    PROBES) and its code, flagged against the workspace's ``now`` (``study.flag``)."""
    return study.flag(pd.DataFrame([
        {"experiment": e["name"], "rev": e.get("rev", ""), "baseline": e.get("baseline", ""),
         "timestamp": e.get("timestamp", ""), "seed": flat(e["params"]).get(SEED), "run": name,
         **{k: flat(e["params"]).get(k) for k in STUDY.runs.get(name, {})},
         **{k: study.metrics(e).get(k) for k in [*VAE.values(), *PROBES]}, "code": e.get("code", {})}
        for name, e in runs.items()]), now, root)


def main(argv: list[str] | None = None, root: Path = Path(".")) -> None:
    if (got := study.start(STUDY, study.arguments(STUDY, __doc__).parse_args(argv))) is None:
        return
    base, found = got[1][0], study.named(STUDY, got[1])
    now = study.code_state(root)
    kept = rows({"β = 1 (the commit's run)": base, **found}, now, root)
    fresh = set(study.fresh(kept)["experiment"])
    found = {n: e for n, e in found.items() if e["name"] in fresh}
    if base["name"] not in fresh:
        sys.exit("exercises: the commit's own run ran at other code than the workspace's dvc.lock; commit "
                 "after `dvc repro` first")
    betas = sorted([(base, flat(base["params"])["train_vae.beta"])] + [
        (found[n], p["train_vae.beta"]) for n, p in STUDY.runs.items() if "train_vae.beta" in p and n in found],
        key=lambda item: item[1])
    if len(betas) < 2 or "mnist-d8" not in found:
        sys.exit("exercises: the β runs or the MNIST d = 8 run are missing; run `make exercises` first")
    lines = [f"# The course's exercises, from real runs of {base['rev'][:7]}", "",
             f"## β, the parameter to tune (Fashion-MNIST, latent_dim = {base['params']['latent_dim']}, test set)", "",
             "| β | run | " + " | ".join(VAE) + " |", "|---" * (len(VAE) + 2) + "|"]
    reports = study.seed_reports(root)
    floor = lambda e: (noise.report_for(noise.configuration(flat(e["params"]), SEED), reports) or (None, None))[1]  # noqa: E731
    one = study.metrics(base)
    for e, beta in betas:
        m = study.metrics(e)
        judged = {} if e is base else noise.judge({k: m[k] - one[k] for k in VAE.values()},
                                                  noise.floors(list(VAE.values()), floor(base), floor(e)), one)
        cells = [(f"{m[k]:.5f}" if "mse" in k else f"{m[k]:.4g}") +
                 (f" ({judged[k]['change']:+.2g}, {judged[k]['verdict']})" if k in judged else "") for k in VAE.values()]
        lines.append(f"| {beta:g} | {e['name']} | " + " | ".join(cells) + " |")
    lines += ["", "In brackets: the change from β = 1, judged as `make compare` judges it (tools/noise.py): "
                  "\"no floor\" where no seed report was measured at that β (`make seeds SET=\"-S train_vae.beta=4\"` "
                  "measures one); a floor is never borrowed from β = 1's seeds."]
    e = found["mnist-d8"]
    m = study.metrics(e)
    lines += ["", f"## MNIST with an 8-D latent ({e['name']}): a classifier on the codes against one on the pixels", "",
              "| representation | logistic regression | MLP |", "|---|---|---|",
              f"| pixels (784) | {m['classifier.logreg_test_acc']:.4f} | {m['classifier.test_acc']:.4f} |",
              *(f"| {r.upper()} (8) | {m[f'downstream.{r}.logreg_test_acc']:.4f} | {m[f'downstream.{r}.mlp_test_acc']:.4f} |"
                for r in study.REPS),
              "", f"Best latent probe minus the same classifier on pixels: {m['downstream.best_latent_minus_pixels']:+.4f}."]
    panels = {f"β = {beta:g}: {kind}": run_file(e["rev"], path, root, "exercises")
              for e, beta in betas for kind, path in zip(("reconstructions", "prior samples"), IMAGES)}
    study.write(root, "exercises", "\n".join(lines) + "\n", {}, {"beta.png": figures.png_panels(
        panels, len(IMAGES), "The VAE's β: test images and their reconstructions (left), samples from N(0, I) (right)")},
        rows=kept, code=now)


if __name__ == "__main__":
    run(main)
