"""The bottleneck control, `make bottleneck`: what can d numbers carry for the class?

The AE's encoder and head to a d-wide code, then a linear layer to the logits, trained end to
end on the labels with the AE's budget (``train_ae``), its code probed exactly like the latents
(``stages.core.probes.probe``): between the latents' probes and this one lies what the
unsupervised objective costs at that size. Each dataset's split is the pipeline's own (the
preprocess stage run in a temporary folder); every size and seed trains once, in this process.
Writes reports/<out>.{md,json}, beside each size the sweep's probes (reports/sweep*.json), and
judges as one family (tools/study.py's rule) what the size costs the control (each size against
the largest, paired by seed) and the control's MLP probe against the pixel MLP and the AE's codes
(Welch: the sweep keeps no per-seed values); ``--reuse`` rewrites both from the JSON's runs alone.
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

import torch
from torch import nn

from stages.core import builders, paths
from stages.core.archs import ARCHS
from stages.core.cli import run
from stages.core.config import AEConfig
from stages.core.data import DATASETS, N_CLASSES, SPLITS, DataError
from stages.core.device import batched, resolve_device, seed_everything
from stages.core.inputs import load_tensors
from stages.core.models import ConvConfig, classification_loss
from stages.core.params import from_section, load_params, top_level
from stages.core.probes import probe
from stages.core.training import train_and_test
from tools import noise, study
from tools.study import Study, cell

STUDY = Study("bottleneck", grid={"latent_dim": [2, 8]}, seeds=[0, 1, 2])

REPO = Path(__file__).resolve().parents[1]


class BottleneckClassifier(nn.Module):
    """The AE's encoder and head to a ``latent_dim``-wide code (``encode``), then a linear layer
    to the class logits."""

    kind = "bottleneck"

    def __init__(self, cfg: ConvConfig, n_classes: int):
        super().__init__()
        self.cfg = cfg
        arch = ARCHS[cfg.arch]
        self.encoder = arch.encoder(cfg)
        self.to_latent = arch.head(cfg, False)
        self.classify = nn.Linear(cfg.latent_dim, n_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))  # (B, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(x))  # (B, n_classes) logits

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return classification_loss(self(x), y)


def build(params: dict, n_classes: int) -> tuple[BottleneckClassifier, AEConfig]:
    """The model and the AE's training budget (``train_ae``); cross-entropy whatever its loss."""
    cfg = from_section(AEConfig, params, "train_ae")
    arch = builders.conv_config(params, "train_ae", cfg.loss)
    seed_everything(cfg.seed)
    return BottleneckClassifier(arch, n_classes), cfg


NUMBERS = {"own": "end to end", "logreg": "logreg probe", "mlp": "MLP probe", "knn5": "5-NN probe"}


def processed(params: dict, dataset: str, raw: Path, tmp: Path) -> tuple[dict, list[str]]:
    """``dataset``'s splits ({split: (x, y)}) and class names, as the preprocess stage writes them in ``tmp``."""
    root = tmp / dataset
    (root / "data").mkdir(parents=True)
    (root / "data" / "raw").symlink_to(raw.resolve())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "data": {**params["data"], "dataset": dataset}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "stages.preprocess"], cwd=root, env=env,
                            capture_output=True, text=True)
    if result.returncode:
        raise DataError(f"preprocess of {dataset} failed: {(result.stderr or result.stdout).strip().splitlines()[-1]}")
    return load_tensors(root / paths.PROCESSED_DIR, builders.input_config(params))


def one_run(params: dict, data: dict, classes: list[str], d: int, seed: int) -> dict:
    """Train the bottleneck classifier at size ``d`` and seed ``seed``; probe its code."""
    run_params = {**copy.deepcopy(params), "latent_dim": d, "seed": seed}  # the training seed of both
    device = resolve_device(top_level(run_params, "device"))
    model, cfg = build(run_params, N_CLASSES)
    model = model.to(device)
    _, own = train_and_test(model, data, cfg, "train_ae", f"bottleneck d={d} seed={seed}")
    model.eval()
    codes = {s: batched(model.encode, data[s][0], device).numpy() for s in SPLITS}
    labels = {s: data[s][1].numpy() for s in SPLITS}
    probed = probe({"mlp": codes}, labels, run_params, len(classes), f"bottleneck d={d} seed={seed}", device)["mlp"]
    print(f"bottleneck: d={d} seed={seed}: end to end {own['test_acc']:.4f}, {probed.summary()}", flush=True)
    return {"latent_dim": d, "seed": seed, "own": own["test_acc"], "logreg": probed.logreg.test_acc,
            "mlp": probed.mlp["test_acc"], "knn5": probed.knn["k=5"]["test_acc"], "best_epoch": own["best_epoch"]}


def summaries(runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Per dataset and size each number's mean and 95 % half-width over the seeds."""
    return {dataset: study.summarize(pd.DataFrame(rows)[["latent_dim", "seed", *NUMBERS]], ["latent_dim"])
            .to_dict("records") for dataset, rows in runs.items()}


BESIDE = {"pixel MLP": "pixels_mlp", "AE's codes, MLP probe": "ae_mlp"}  # the control's MLP probe against these


def judged(runs: dict[str, list[dict]], root: Path) -> dict[tuple, dict]:
    """One family: per dataset each size's numbers minus the largest size's (paired by seed), and
    the control's MLP probe minus each of BESIDE from the sweep at that size (Welch)."""
    tests = {}
    for dataset, rows in runs.items():
        by = {(r["latent_dim"], r["seed"]): r for r in rows}
        sizes = sorted({r["latent_dim"] for r in rows})
        for d in sizes[:-1]:
            seeds = sorted(s for (dd, s) in by if dd == d and (sizes[-1], s) in by)
            for k, what in NUMBERS.items():
                tests[(dataset, f"d = {sizes[-1]} → {d}", f"{what} accuracy")] = noise.paired_test(
                    [by[(d, s)][k] - by[(sizes[-1], s)][k] for s in seeds])
        for d in sizes:
            sweep = study.sweep_row(root, dataset, d)
            own = noise.summary([r["mlp"] for r in rows if r["latent_dim"] == d])
            for what, key in BESIDE.items() if sweep else ():
                tests[(dataset, f"d = {d}", f"MLP probe minus {what}")] = noise.welch_test(
                    noise.from_interval(sweep[key], sweep[f"{key}_ci"], sweep["n"]), own)
    return study.judge(tests)


TESTS = ("a size against the largest: paired t on the per-seed differences (the two sizes' runs share seeds); "
         "the control against the sweep's numbers at its size: Welch's t (the sweep kept no per-seed values)")


def markdown(results: dict[str, list[dict]], root: Path, epochs: int, verdicts: dict | None = None) -> str:
    lines = ["# The bottleneck control: what d numbers can carry for the class", "",
             f"The AE's encoder to a d-wide code and a linear layer to the logits, trained end to end on the labels "
             f"({epochs} epochs, the AE's budget), its code probed like the latents. Each number: the mean over the "
             "seeds ± the half-width of its 95 % interval (Student's t); test accuracy. Beside it, from the latent-size "
             "sweep at the same size and seeds: the AE's and the VAE's MLP probes and the pixel MLP.", ""]
    for dataset, rows in results.items():
        lines += [f"## {dataset}", "", "| latent_dim | seeds | end to end | logreg probe | MLP probe | 5-NN probe "
                  "| AE MLP probe (sweep) | VAE MLP probe (sweep) | pixels MLP |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            sweep = study.sweep_row(root, dataset, r["latent_dim"])
            beside = " | ".join(cell(sweep, k, 4) for k in ("ae_mlp", "vae_mlp", "pixels_mlp")) if sweep else "– | – | –"
            lines.append(f"| {r['latent_dim']} | {r['n']} | " + " | ".join(cell(r, k, 4) for k in NUMBERS) + f" | {beside} |")
        lines.append("")
    if verdicts:
        lines += ["## What the size costs the control, and the control against the pixels and the AE", "",
                  "| dataset | size | difference | mean ± 95 % | test | verdict |", "|---|---|---|---|---|---|"]
        lines += [f"| {ds} | {size} | {what} | {study.pm(j['difference'], j['half_width'], j['n'], 4, '+')} | "
                  f"{j['test']} | {study.verdict(j)} |" for (ds, size, what), j in verdicts.items()]
        lines += ["", study.rule(f"the {len(verdicts)} rows of this table", TESTS), ""]
    return "\n".join(lines)


def report(runs: dict[str, list[dict]], root: Path, epochs: int, out: str) -> dict:
    """reports/<out>.{md,json} from the per-run rows ``runs`` alone."""
    results, verdicts = summaries(runs), judged(runs, root)
    study.write(root, out, markdown(results, root, epochs, verdicts), {
        "epochs": epochs, "sizes": results, "runs": runs,
        "differences": [{"dataset": ds, "size": size, "name": what, **j} for (ds, size, what), j in verdicts.items()]})
    return results


def main(argv: list[str] | None = None, root: Path = REPO) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, STUDY.grid["latent_dim"])), help="latent sizes, comma-separated")
    parser.add_argument("--seeds", default=",".join(map(str, STUDY.seeds)), help="training seeds, comma-separated")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--out", default=STUDY.name, help="reports/<out>.{md,json}")
    parser.add_argument("--reuse", action="store_true",
                        help="train nothing: rewrite reports/<out>.{md,json} from the runs reports/<out>.json keeps "
                             "(after make sweep-report)")
    args = parser.parse_args(argv)
    if args.reuse:
        path = root / "reports" / f"{args.out}.json"
        if not path.exists():
            raise DataError(f"{path} is missing: --reuse rewrites the markdown of an earlier run; "
                            "run `make bottleneck` first")
        saved = study.read_report(path)
        return report(saved["runs"], root, saved["epochs"], args.out)
    sizes, seeds, datasets = [int(v) for v in args.sizes.split(",")], [int(v) for v in args.seeds.split(",")], \
        args.datasets.split(",")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise DataError(f"--datasets: unknown {', '.join(unknown)}; choose among {', '.join(DATASETS)}")
    params = load_params(root)
    raw = root / paths.RAW_DIR
    if not all((raw / d).is_dir() for d in datasets):
        raise DataError(f"{raw} lacks a dataset; run `dvc repro download` (or `dvc pull`) first")
    start = time.perf_counter()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bottleneck-") as tmp:
        for dataset in datasets:
            data, classes = processed(params, dataset, raw, Path(tmp))
            runs[dataset] = [one_run(params, data, classes, d, s) for d in sizes for s in seeds]
    results = report(runs, root, params["train_ae"]["epochs"], args.out)
    print(f"bottleneck: {sum(map(len, runs.values()))} runs in {time.perf_counter() - start:.0f} s")
    return results


if __name__ == "__main__":
    run(main)
