"""The bottleneck control, `make bottleneck`: what can d numbers carry for the class?

The AE's encoder and head to a d-wide code, then a linear layer to the logits, trained end to
end on the labels with the AE's budget (``train_ae``), its code probed exactly like the latents
(``stages.core.probes.probe``): between the latents' probes and this one lies what the
unsupervised objective costs at that size. Beside it the reference without a bottleneck (size
"none"): the same encoder, its features straight to the logits, so what the d-wide layer costs
is measured against the encoder's own reach, not only the pixel MLP's. Each dataset's split is
the pipeline's own (the preprocess stage run in a temporary folder); every size and seed trains
once, in this process. Each run is a row of reports/<out>.json with its code state (``code``):
a seed's sizes are trained together and the report written after each, so a stopped study
resumes (fresh rows are not trained again) and a row run at other code is stale, in no table.
One family (tools/study.py's rule) judges what the size costs the control (each size against the
reference and against the largest size, paired by seed, with the test images' own noise) and
the control against the pixel MLP and the AE's codes of the latent-size sweep (paired by seed
with its per-run rows, Welch where it has none); ``--reuse`` rewrites both from the JSON alone,
flagged against the workspace's code where that keeps its fresh rows fresh (study.rebase).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
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
from stages.core.probes import paired_accuracy, probe
from stages.core.training import train_and_test
from tools import noise, study
from tools.study import Study, cell

NONE = 0  # the size of the reference: no d-wide layer, the encoder's features straight to the logits
STUDY = Study("bottleneck", grid={"latent_dim": [2, 8, NONE]}, seeds=[0, 1, 2])

REPO = Path(__file__).resolve().parents[1]


def size(d: int) -> str:
    return "none" if d == NONE else str(d)


def name(dataset: str, d: int) -> str:
    """A run's name in its row (it is no DVC experiment): the study, the dataset, the size."""
    return f"bottleneck-{dataset}-{size(d)}"


class BottleneckClassifier(nn.Module):
    """The AE's encoder and head to a ``latent_dim``-wide code (``encode``), then a linear layer
    to the class logits; without ``bottleneck`` (the reference) the encoder's features are the code."""

    kind = "bottleneck"

    def __init__(self, cfg: ConvConfig, n_classes: int, bottleneck: bool = True):
        super().__init__()
        self.cfg = cfg
        arch = ARCHS[cfg.arch]
        self.encoder = arch.encoder(cfg)
        self.to_latent = arch.head(cfg, False) if bottleneck else nn.Identity()
        with torch.no_grad():  # the code's width: one blank image through the encoder (no random numbers)
            side = cfg.sizes()[0]
            width = self.to_latent(self.encoder.eval()(torch.zeros(1, 1, side, side))).shape[1]
        self.encoder.train()
        self.classify = nn.Linear(width, n_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))  # (B, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(x))  # (B, n_classes) logits

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return classification_loss(self(x), y)


def build(params: dict, n_classes: int) -> tuple[BottleneckClassifier, AEConfig]:
    """The model and the AE's training budget (``train_ae``); cross-entropy whatever its loss.
    ``latent_dim`` NONE: the reference, whose encoder starts from the same weights at a seed."""
    cfg = from_section(AEConfig, params, "train_ae")
    bottleneck = params["latent_dim"] != NONE
    arch = builders.conv_config({**params, "latent_dim": params["latent_dim"] if bottleneck else 1}, "train_ae", cfg.loss)
    seed_everything(cfg.seed)
    return BottleneckClassifier(arch, n_classes, bottleneck), cfg


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


def one_run(params: dict, data: dict, classes: list[str], d: int, seed: int) -> tuple[dict, dict]:
    """Train the control at size ``d`` (NONE: the reference) and seed ``seed``; probe its code.
    Its row, and each number's test predictions (for the test images' noise of a difference)."""
    run_params = {**copy.deepcopy(params), "latent_dim": d, "seed": seed}  # the training seed of both
    device = resolve_device(top_level(run_params, "device"))
    model, cfg = build(run_params, N_CLASSES)
    model = model.to(device)
    label = f"bottleneck d={size(d)} seed={seed}"
    _, own = train_and_test(model, data, cfg, "train_ae", label)
    model.eval()
    codes = {s: batched(model.encode, data[s][0], device).numpy() for s in SPLITS}
    labels = {s: data[s][1].numpy() for s in SPLITS}
    probed = probe({"mlp": codes}, labels, run_params, len(classes), label, device)["mlp"]
    print(f"bottleneck: d={size(d)} seed={seed}: end to end {own['test_acc']:.4f}, {probed.summary()}", flush=True)
    preds = {"own": batched(model, data["test"][0], device).argmax(1).numpy(), "logreg": probed.test_pred("logreg"),
             "mlp": probed.test_pred("mlp"), "knn5": probed.test_pred("k=5")}
    return ({"latent_dim": d, "seed": seed, "own": own["test_acc"], "logreg": probed.logreg.test_acc,
             "mlp": probed.mlp["test_acc"], "knn5": probed.knn["k=5"]["test_acc"], "best_epoch": own["best_epoch"]},
            preds)


def image_ses(rows: list[dict], preds: list[dict], actual: np.ndarray) -> None:
    """Each row of one seed gains ``test_images``: per number and each other size of that seed, the
    se over the test images of its difference to it ({"<number> - <size>": se})."""
    for r, p in zip(rows, preds):
        r["test_images"] = {f"{k} - {size(o['latent_dim'])}": paired_accuracy(actual, p[k], q[k])["se"]
                            for o, q in zip(rows, preds) if o is not r for k in NUMBERS}


def trained_code(root: Path) -> dict[str, str]:
    """A row's code state: the pipeline's code it trains and probes with (dvc.lock's, as every
    study's) and the md5 of this file's training code (the model, its build, one run), not its report's."""
    own = "".join(inspect.getsource(f) for f in (BottleneckClassifier, build, processed, one_run, image_ses))
    return {**study.code_state(root), "tools/bottleneck_control.py (training)": hashlib.md5(own.encode()).hexdigest()}


def summaries(rows: pd.DataFrame) -> dict[str, list[dict]]:
    """Per dataset and size each number's mean and 95 % half-width over the seeds."""
    return {dataset: [{**r, "size": size(r["latent_dim"])} for r in sorted(
                study.summarize(group[["latent_dim", "seed", *NUMBERS]], ["latent_dim"]).to_dict("records"),
                key=lambda r: (r["latent_dim"] == NONE, r["latent_dim"]))]
            for dataset, group in rows.groupby("dataset", sort=False)}


BESIDE = {"pixel MLP": "pixels_mlp", "AE's codes, MLP probe": "ae_mlp"}  # the control against these, in the sweep


def judged(rows: pd.DataFrame, root: Path) -> dict[tuple, dict]:
    """One family: per dataset each size's numbers minus the reference's and the largest size's
    (paired by seed, with the test images), and the control's MLP probe (the reference's end to
    end) minus each of BESIDE from the sweep at that size: paired by seed with its fresh per-run
    rows, else Welch against its summary."""
    tests = {}
    for dataset, group in rows.groupby("dataset", sort=False):
        by = {(r["latent_dim"], r["seed"]): r for r in group.to_dict("records")}
        sizes = sorted({d for d, _ in by} - {NONE})
        pairs = [(d, NONE, ("own",)) for d in sizes] if any(dd == NONE for dd, _ in by) else []
        pairs += [(d, sizes[-1], tuple(NUMBERS)) for d in sizes[:-1]]
        for d, ref, numbers in pairs:
            seeds = sorted(s for (dd, s) in by if dd == d and (ref, s) in by)
            for k in numbers:
                test = noise.paired_test([by[(d, s)][k] - by[(ref, s)][k] for s in seeds])
                tests[(dataset, f"d = {size(ref)} → {size(d)}", f"{NUMBERS[k]} accuracy")] = noise.with_test_images(
                    test, [by[(d, s)].get("test_images", {}).get(f"{k} - {size(ref)}") for s in seeds])
        for d in sorted({d for d, _ in by}, key=lambda d: (d == NONE, d)):
            key, beside = ("own", {"pixel MLP": "pixels_mlp"}) if d == NONE else ("mlp", BESIDE)
            own = {s: by[(dd, s)][key] for dd, s in by if dd == d}
            at = d if d != NONE else 2  # the reference against the pixel MLP: any size's runs have it
            swept, summary = study.sweep_runs(root, dataset, at), study.sweep_row(root, dataset, at)
            for what, col in beside.items():
                name = (dataset, f"d = {size(d)}", f"{NUMBERS[key]} minus {what}")
                shared = sorted(s for s in own if s in swept)
                if len(shared) > 1:
                    tests[name] = noise.paired_test([own[s] - swept[s][col] for s in shared])
                elif summary:
                    tests[name] = noise.welch_test(noise.from_interval(summary[col], summary[f"{col}_ci"], summary["n"]),
                                                   noise.summary(list(own.values())))
    return study.judge(tests)


TESTS = ("a size against the reference or the largest size: paired t on the per-seed differences (the runs share "
         "seeds) + the test images (each seed's two runs predict the same images); the control against the sweep: "
         "paired t by seed on the sweep's per-run rows (the seeds' noise only), Welch's t where it kept none")


def markdown(results: dict[str, list[dict]], root: Path, epochs: int, verdicts: dict | None = None) -> str:
    lines = ["# The bottleneck control: what d numbers can carry for the class", "",
             f"The AE's encoder to a d-wide code and a linear layer to the logits, trained end to end on the labels "
             f"({epochs} epochs, the AE's budget), its code probed like the latents; size \"none\": the reference, the "
             "same encoder's features straight to the logits (no d-wide layer). Each number: the mean over the "
             "seeds ± the half-width of its 95 % interval (Student's t); test accuracy. Beside it, from the latent-size "
             "sweep at the same size and seeds: the AE's and the VAE's MLP probes and the pixel MLP.", ""]
    for dataset, rows in results.items():
        lines += [f"## {dataset}", "", "| latent_dim | seeds | end to end | logreg probe | MLP probe | 5-NN probe "
                  "| AE MLP probe (sweep) | VAE MLP probe (sweep) | pixels MLP |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            sweep = study.sweep_row(root, dataset, r["latent_dim"] or 2)
            beside = " | ".join(cell(sweep, k, 4) if r["latent_dim"] or k == "pixels_mlp" else "–"
                                for k in ("ae_mlp", "vae_mlp", "pixels_mlp")) if sweep else "– | – | –"
            lines.append(f"| {size(r['latent_dim'])} | {r['n']} | " + " | ".join(cell(r, k, 4) for k in NUMBERS)
                         + f" | {beside} |")
        lines.append("")
    if verdicts:
        lines += ["## What the size costs the control, and the control against the pixels and the AE", "",
                  "| dataset | size | difference | mean ± 95 % | test | verdict |", "|---|---|---|---|---|---|"]
        lines += [f"| {ds} | {where} | {what} | {study.pm(j['difference'], j['half_width'], j['n'], 4, '+')} | "
                  f"{j['test']} | {study.verdict(j)} |" for (ds, where, what), j in verdicts.items()]
        lines += ["", study.rule(f"the {len(verdicts)} rows of this table", TESTS), ""]
    return "\n".join(lines)


def report(rows: pd.DataFrame, root: Path, epochs: int, out: str, now: dict | None) -> dict:
    """reports/<out>.{md,json} from the per-run ``rows`` alone (flagged against the code ``now``)."""
    rows = study.flag(pd.DataFrame(sorted(rows.to_dict("records"), key=lambda r: (
        list(study.SWEEPS).index(r["dataset"]), r["latent_dim"] == NONE,  # Fashion-MNIST first, as the sweeps
        r["latent_dim"], r["seed"]))).drop(columns="stale", errors="ignore"), now, root)
    use = study.fresh(rows)
    results, verdicts = summaries(use), judged(use, root)
    study.write(root, out, markdown(results, root, epochs, verdicts), {
        "epochs": epochs, "sizes": results, "tests": TESTS,
        "differences": [{"dataset": ds, "size": where, "name": what, **j} for (ds, where, what), j in verdicts.items()]},
        rows=rows, code=now)
    return results


def stored(root: Path, out: str) -> pd.DataFrame:
    """The rows reports/<out>.json keeps, each with its code state ({path: md5}; None before rows kept it)."""
    path = root / "reports" / f"{out}.json"
    saved = study.read_report(path) if path.exists() else {}
    states = saved.get("code_states", {})
    rows = [{**r, "code": states.get(r.get("code"))} for r in saved.get("rows", [])]
    rows += [{"experiment": name(ds, r["latent_dim"]), **r, "dataset": ds, "code": None}
             for ds, runs in saved.get("runs", {}).items() for r in runs]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None, root: Path = REPO) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(size, STUDY.grid["latent_dim"])),
                        help="latent sizes, comma-separated; none: the reference without a bottleneck")
    parser.add_argument("--seeds", default=",".join(map(str, STUDY.seeds)), help="training seeds, comma-separated")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--out", default=STUDY.name, help="reports/<out>.{md,json}")
    parser.add_argument("--reuse", action="store_true",
                        help="train nothing: rewrite reports/<out>.{md,json} from the rows reports/<out>.json keeps "
                             "(after make sweep-report)")
    args = parser.parse_args(argv)
    if args.reuse:
        path = root / "reports" / f"{args.out}.json"
        if not path.exists():
            raise DataError(f"{path} is missing: --reuse rewrites the markdown of an earlier run; "
                            "run `make bottleneck` first")
        saved = study.read_report(path)
        kept = stored(root, args.out)
        _, now = study.rebase(kept, saved.get("code_states", {}).get(saved.get("code_now")),
                              trained_code(root) if study.code_state(root) else None, root, args.out)
        return report(kept, root, saved["epochs"], args.out, now)
    bad = [v for v in args.sizes.split(",") if v != "none" and not (v.isdigit() and int(v) > 0)]
    bad += [v for v in args.seeds.split(",") if not v.isdigit()]
    if bad:
        raise DataError(f"--sizes/--seeds: {', '.join(bad)} is not a size (a positive integer, or none) or a seed "
                        "(an integer >= 0); e.g. --sizes 2,8,none --seeds 0,1,2")
    sizes = [NONE if v == "none" else int(v) for v in args.sizes.split(",")]
    seeds, datasets = [int(v) for v in args.seeds.split(",")], args.datasets.split(",")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise DataError(f"--datasets: unknown {', '.join(unknown)}; choose among {', '.join(DATASETS)}")
    params = load_params(root)
    raw = root / paths.RAW_DIR
    if not all((raw / d).is_dir() for d in datasets):
        raise DataError(f"{raw} lacks a dataset; run `dvc repro download` (or `dvc pull`) first")
    now, epochs, start = trained_code(root), params["train_ae"]["epochs"], time.perf_counter()
    rows = study.flag(stored(root, args.out), now, root)
    done = set() if rows.empty else {(r.dataset, r.latent_dim, r.seed) for r in study.fresh(rows).itertuples()}
    trained = 0
    with tempfile.TemporaryDirectory(prefix="bottleneck-") as tmp:
        for dataset in datasets:
            todo = [s for s in seeds if any((dataset, d, s) not in done for d in sizes)]
            if len(todo) < len(seeds):
                print(f"bottleneck: {dataset} seeds {[s for s in seeds if s not in todo]}: fresh in "
                      f"reports/{args.out}.json, not trained again")
            data, classes = processed(params, dataset, raw, Path(tmp)) if todo else (None, None)
            for s in todo:  # a seed's sizes together: their differences' test-image se needs both runs' predictions
                made = [one_run(params, data, classes, d, s) for d in sizes]
                new = [{"experiment": name(dataset, r["latent_dim"]), "dataset": dataset, **r, "code": now} for r, _ in made]
                image_ses(new, [p for _, p in made], data["test"][1].numpy())
                keys = {(dataset, d, s) for d in sizes}
                old = rows[[(r.dataset, r.latent_dim, r.seed) not in keys for r in rows.itertuples()]] if len(rows) else rows
                rows = pd.concat([old, pd.DataFrame(new)], ignore_index=True)  # report() flags them
                trained += len(made)
                results = report(rows, root, epochs, args.out, now)  # after each seed: resumable
    if not trained:
        results = report(rows, root, epochs, args.out, now)
    print(f"bottleneck: {trained} runs in {time.perf_counter() - start:.0f} s")
    return results


if __name__ == "__main__":
    run(main)
