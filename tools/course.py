"""`make course` / `make course-report`: the course's models side by side, from real runs.

`make course` (``--queue``) queues in DVC's own queue one experiment per course model,
``course-<name>``, each with its ``model.arch`` and the dataset, input scale, loss and
latent size the course gives it (:data:`RUNS`), and starts a worker. The report waits
for the queue, reads those runs of ``--rev`` with ``dvc exp show --json`` (their
reports with ``git show``), and writes ``reports/course.md``: per model its test MSE
on [0, 1], latent size, parameters, seconds per training epoch (from the run's log,
``dvc queue logs``) and the latent probes against the pixels; the commit's own run
(the backbone) is the first row. ``plots/course/reconstructions.png`` puts each run's
``plots/train_ae/reconstructions.png`` side by side.

Every run trains its VAE for one epoch only (:data:`COMMON`): the table is about the
course's autoencoders, and six more VAE epochs of the two Keras Fashion-MNIST models
would cost this 2-core machine 28 minutes (81 s and 199 s an epoch, measured).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

from stages.core import builders
from stages.core.archs import ARCHS, latent_text
from stages.core.cli import run
from stages.core.io import save_figure, write_text
from tools import figures
from tools.experiments import cached_png, flat, git_json, wait

REPORT = Path("reports/course.md")
FIGURE = Path("plots/course/reconstructions.png")
SEEDS = {"fashion_mnist": Path("reports/seeds.json"), "mnist": Path("reports/seeds_mnist.json")}
# Each course model on the course's dataset, input and loss, its latent as the course has
# it; a run by name (course-<name>). The tanh MNIST stack's code collapses to a constant
# at the pipeline's lr (its first run below): its second run trains at Keras's default.
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
COMMON = {"train_vae.epochs": 1}
EPOCH_LINE = re.compile(r"^train_ae \d+/\d+: .*\(([\d.]+) s\)\s*$", re.M)
DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def overrides(name: str) -> dict:
    return {**RUNS[name], **COMMON}


def queue(names: list[str]) -> None:
    """Queue ``names`` (all of :data:`RUNS` when empty) and start a worker."""
    for name in names or RUNS:
        sets = [arg for key, value in overrides(name).items() for arg in ("-S", f"{key}={value}")]
        subprocess.run(["dvc", "exp", "run", "--queue", "--name", f"course-{name}", *sets], check=True)
    subprocess.run(["dvc", "queue", "start"], check=True)


def seconds_per_epoch(name: str) -> float | None:
    """The median seconds of the run's train_ae epochs, from its queue log (None without one)."""
    log = subprocess.run(["dvc", "queue", "logs", name], capture_output=True, text=True)
    times = [float(t) for t in EPOCH_LINE.findall(log.stdout)]
    return statistics.median(times) if times else None


def unflat(changes: dict, base: dict) -> dict:
    params = copy.deepcopy(base)
    for key, value in changes.items():
        *sections, leaf = key.split(".")
        node = params
        for s in sections:
            node = node[s]
        node[leaf] = value
    return params


def row(entry: dict, name: str, seconds: float | None) -> dict:
    params, m = entry["params"], flat(entry["metrics"])
    model, _ = builders.autoencoder(params)
    shape = ARCHS[model.cfg.arch].latent_shape(model.cfg)  # (C, H, W) of a spatial latent, else None
    down = git_json(entry["rev"], "reports/downstream.json")
    inp, side = model.cfg.input, model.cfg.sizes()[0]
    return {
        "model": name, "run": entry["name"], "rev": entry["rev"], "dataset": params["data"]["dataset"],
        "input": f"{side}x{side}, {'[-1, 1]' if inp.normalize == 'symmetric' else '[0, 1]'}, "
                 f"{params['train_ae']['loss']}",
        "latent": f"{latent_text(shape)} = {params['latent_dim']}" if shape else str(params["latent_dim"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_epoch": seconds,
        "ae_mse": m["metrics/train_ae.json.ae.test_mse"],
        "pca_mse": m["metrics/evaluate.json.pca.test_mse"], "pca_dim": down.get("pca", {}).get("dim"),
        "ae_logreg": m["metrics/downstream.json.downstream.ae.logreg_test_acc"],
        "ae_mlp": m["metrics/downstream.json.downstream.ae.mlp_test_acc"],
        "ae_5nn": down.get("ae", {}).get("knn", {}).get("k=5", {}).get("test_acc"),
        "pixels_logreg": m["metrics/train_classifier.json.classifier.logreg_test_acc"],
        "pixels_mlp": m["metrics/train_classifier.json.classifier.test_acc"],
    }


def noise_note(noise: dict[str, dict]) -> str:
    """What the table's differences rest on: the default backbone's seeds, none of the course models'."""
    return ("Noise: each course model is one run, and no seed report was measured at its params, so no "
            "difference in this table is judged beyond the noise (`make compare` says \"no floor\"). For scale, "
            "the default backbone's AE test MSE has sd " +
            ", ".join(f"{s['sd']:.5f} over {s['n']} seeds on {DATASETS[d]}" for d, s in noise.items()) +
            " (reports/seeds*.json).")


def markdown(rows: list[dict], commit: str, noise: dict[str, dict]) -> str:
    num = lambda v, digits: "n/a" if v is None else f"{v:.{digits}f}"
    mse = lambda v: f"{v:.5f}" if v >= 1e-4 else f"{v:.1e}"  # PCA of a code larger than the image: ~0
    lines = [f"# The course's models, from real runs of {commit}", "",
             "Test set; MSE per pixel on [0, 1] whatever the model trains on; probes: logistic regression, "
             "the pixel MLP and 5-NN on the AE's codes, against logistic regression and the MLP on all pixels.", "",
             "| model | run | data | input, loss | latent | parameters (AE) | s/epoch | AE MSE | PCA MSE (d) | "
             "AE logreg | AE MLP | AE 5-NN | pixels logreg | pixels MLP |", "|---" * 14 + "|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['run']} | {DATASETS[r['dataset']]} | {r['input']} | {r['latent']} | "
            f"{r['parameters']:,} | {num(r['seconds_per_epoch'], 1)} | {mse(r['ae_mse'])} | "
            f"{mse(r['pca_mse'])} ({r['pca_dim']}) | {r['ae_logreg']:.4f} | {r['ae_mlp']:.4f} | {num(r['ae_5nn'], 4)} | "
            f"{r['pixels_logreg']:.4f} | {r['pixels_mlp']:.4f} |")
    lines += ["", "s/epoch: the median of the AE's 7 epochs on this run's machine, its after-epoch train pass and "
                  "val pass included (n/a: the commit's own run, which left no queue log). "
                  "The VAE of each course run trained one epoch only (`train_vae.epochs=1`): not in this table.",
              "", noise_note(noise)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, root: Path = Path(".")) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", nargs="*", metavar="NAME", help="queue these course runs (all when none "
                        "is named) and start a worker")
    parser.add_argument("--rev", default="HEAD", help="the commit whose experiments to read")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    args = parser.parse_args(argv)
    if args.queue is not None:
        queue(args.queue)
        return []
    entries = [e for e in wait(args.rev, args.poll, "course") if e["state"] == "success"]
    base = entries[0]
    rows = [row(base, base["params"]["model"]["arch"], None)]
    for name in RUNS:
        wanted = unflat(overrides(name), base["params"])
        runs = sorted((e for e in entries[1:] if e["params"] == wanted), key=lambda e: e["timestamp"])
        if runs:
            rows.append(row(runs[-1], name, seconds_per_epoch(runs[-1]["name"])))
    if len(rows) == 1:
        sys.exit("course: no course run of this commit has finished; run `make course` first")
    noise = {d: json.loads((root / p).read_text())["metrics"]["ae.test_mse"]
             for d, p in SEEDS.items() if (root / p).is_file()}
    write_text(root / REPORT, markdown(rows, base["rev"][:7], noise))
    panels = {f"{r['model']} ({DATASETS[r['dataset']]}, latent {r['latent']})":
              cached_png(r["rev"], "plots/train_ae/reconstructions.png", root, "course") for r in rows}
    save_figure(root / FIGURE, figures.png_panels(panels, 2, "Test images (top row of each) and each course "
                                                         "model's reconstructions"))
    print((root / REPORT).read_text())
    return rows


if __name__ == "__main__":
    run(main)
