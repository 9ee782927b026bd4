"""The course's models side by side, from real runs: `make course` queues one run per course
model (``course-<name>``, on the dataset, input, loss and latent the course gives it; the VAE
one epoch only, the table being about the AEs); `make course-report` writes
reports/course.md (per model test MSE, latent, parameters, s/epoch from its queue log,
probes against the pixels; the commit's own run first), plots/course/reconstructions.png and
reports/course.json: each run as a row with its code state (tools/study.py); a run at other code
than the workspace's is stale, named under the report and in no table.
"""
from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

from stages.core import builders
from stages.core.archs import ARCHS, latent_text
from stages.core.cli import run
from tools import figures, study
from tools.experiments import run_file, run_json
from tools.study import Study

# Each course model as the course has it. The tanh MNIST stack's code collapsed to a constant at
# the pipeline's lr in an earlier run: its second run trains at Keras's default.
RUNS = {
    "mnist_2d": {"model.arch": "mnist_2d", "data.dataset": "mnist", "latent_dim": 2},
    "mnist_2d-lr0.001": {"model.arch": "mnist_2d", "data.dataset": "mnist", "latent_dim": 2,
                         "train_ae.lr": 0.001, "train_vae.lr": 0.001},
    "keras_practice": {"model.arch": "keras_practice", "data.dataset": "mnist", "latent_dim": 7 * 7 * 64,
                       "train_ae.loss": "bce"},
    "guide12": {"model.arch": "guide12", "data.dataset": "fashion_mnist", "latent_dim": 128,
                "input.normalize": "symmetric", "train_ae.loss": "mse", "train_vae.loss": "mse"},
    "keras_fashion": {"model.arch": "keras_fashion", "data.dataset": "fashion_mnist", "latent_dim": 2, "input.pad": 2},
    "keras_fashion_upsample": {"model.arch": "keras_fashion_upsample", "data.dataset": "fashion_mnist",
                               "latent_dim": 2, "input.pad": 2},
}
STUDY = Study("course", runs={f"course-{name}": {**p, "train_vae.epochs": 1} for name, p in RUNS.items()})
EPOCH_LINE = re.compile(r"^train_ae \d+/\d+: .*\(([\d.]+) s\)\s*$", re.M)
DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
SEEDS = {"fashion_mnist": "reports/seeds.json", "mnist": "reports/seeds_mnist.json"}


def seconds_per_epoch(name: str) -> float | None:
    """The median seconds of the run's train_ae epochs, from its queue log (None without one)."""
    times = [float(t) for t in EPOCH_LINE.findall(subprocess.run(["dvc", "queue", "logs", name], capture_output=True,
                                                                 text=True).stdout)]
    return statistics.median(times) if times else None


def row(entry: dict, name: str, seconds: float | None) -> dict:
    params, m = entry["params"], study.metrics(entry)
    model, _ = builders.autoencoder(params)
    shape = ARCHS[model.cfg.arch].latent_shape(model.cfg)  # (C, H, W) of a spatial latent, else None
    down = run_json(entry["rev"], "reports/downstream.json", who="course")
    inp, side = model.cfg.input, model.cfg.sizes()[0]
    return {"model": name, "experiment": entry["name"], "rev": entry["rev"], "timestamp": entry.get("timestamp", ""),
            "seed": params.get("seed"), "code": entry.get("code", {}), "dataset": params["data"]["dataset"],
            "input": f"{side}x{side}, {'[-1, 1]' if inp.normalize == 'symmetric' else '[0, 1]'}, "
                     f"{params['train_ae']['loss']}",
            "latent": f"{latent_text(shape)} = {params['latent_dim']}" if shape else str(params["latent_dim"]),
            "parameters": sum(p.numel() for p in model.parameters()), "seconds_per_epoch": seconds,
            "ae_mse": m["ae.test_mse"], "pca_mse": m["pca.test_mse"], "pca_dim": down.get("pca", {}).get("dim"),
            "ae_logreg": m["downstream.ae.logreg_test_acc"], "ae_mlp": m["downstream.ae.mlp_test_acc"],
            "ae_5nn": down.get("ae", {}).get("knn", {}).get("k=5", {}).get("test_acc"),
            "pixels_logreg": m["classifier.logreg_test_acc"], "pixels_mlp": m["classifier.test_acc"]}


def markdown(rows: list[dict], commit: str, noise: dict[str, dict]) -> str:
    num = lambda v, digits: "n/a" if v is None else f"{v:.{digits}f}"  # noqa: E731
    mse = lambda v: f"{v:.5f}" if v >= 1e-4 else f"{v:.1e}"  # noqa: E731 (PCA of a code larger than the image: ~0)
    lines = [f"# The course's models, from real runs of {commit}", "",
             "Test set; MSE per pixel on [0, 1] whatever the model trains on; probes: logistic regression, "
             "the pixel MLP and 5-NN on the AE's codes, against logistic regression and the MLP on all pixels.", "",
             "| model | run | data | input, loss | latent | parameters (AE) | s/epoch | AE MSE | PCA MSE (d) | "
             "AE logreg | AE MLP | AE 5-NN | pixels logreg | pixels MLP |", "|---" * 14 + "|"]
    lines += [f"| {r['model']} | {r['experiment']} | {DATASETS[r['dataset']]} | {r['input']} | {r['latent']} | "
              f"{r['parameters']:,} | {num(r['seconds_per_epoch'], 1)} | {mse(r['ae_mse'])} | {mse(r['pca_mse'])} "
              f"({r['pca_dim']}) | {r['ae_logreg']:.4f} | {r['ae_mlp']:.4f} | {num(r['ae_5nn'], 4)} | "
              f"{r['pixels_logreg']:.4f} | {r['pixels_mlp']:.4f} |" for r in rows]
    lines += ["", "s/epoch: the median of the AE's 7 epochs on this run's machine, its after-epoch train pass and "
                  "val pass included (n/a: the commit's own run, which left no queue log). "
                  "The VAE of each course run trained one epoch only (`train_vae.epochs=1`): not in this table.", "",
              "Noise: each course model is one run, and no seed report was measured at its params, so no "
              "difference in this table is judged beyond the noise (`make compare` says \"no floor\"). For scale, "
              "the default backbone's AE test MSE has sd " + ", ".join(
                  f"{s['sd']:.5f} over {s['n']} seeds on {DATASETS[d]}" for d, s in noise.items()) +
              " (reports/seeds*.json)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, root: Path = Path(".")) -> list[dict] | None:
    if (got := study.start(STUDY, study.arguments(STUDY, __doc__).parse_args(argv))) is None:
        return None
    base, now = got[1][0], study.code_state(root)
    kept = study.flag(pd.DataFrame([row(base, base["params"]["model"]["arch"], None)] + [
        row(e, name.removeprefix("course-"), seconds_per_epoch(e["name"]))
        for name, e in study.named(STUDY, got[1]).items()]), now, root)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in study.fresh(kept).to_dict("records")]
    if not rows or rows[0]["experiment"] != base["name"]:
        sys.exit("course: the commit's own run ran at other code than the workspace's dvc.lock; commit after "
                 "`dvc repro` first")
    if len(rows) == 1:
        sys.exit("course: no course run of this commit at the workspace's code has finished; run `make course` first")
    noise = {d: json.loads((root / p).read_text())["metrics"]["ae.test_mse"] for d, p in SEEDS.items()
             if (root / p).is_file()}
    panels = {f"{r['model']} ({DATASETS[r['dataset']]}, latent {r['latent']})":
              run_file(r["rev"], "plots/train_ae/reconstructions.png", root, "course") for r in rows}
    study.write(root, "course", markdown(rows, base["rev"][:7], noise), {}, {"reconstructions.png": figures.png_panels(
        panels, 2, "Test images (top row of each) and each course model's reconstructions")}, rows=kept, code=now)
    return rows


if __name__ == "__main__":
    run(main)
