"""The noise floor: `make seeds-report`, after `make seeds`.

`make seeds` queues, through DVC's own queue, runs of HEAD's params that differ only in
the training seeds (``train_classifier.seed``, ``train_ae.seed``, ``train_vae.seed``, all
set to one value per run; the split, PCA's and the evaluation's seeds stay, so every run
is scored on the same test images), named ``seed<s>-<machine>``. This waits for the queue,
reads the runs of the baseline commit with ``dvc exp show --json`` (HEAD's own committed
run is seed 0), and writes, per headline metric, the mean, sd and 95 % interval, and per
comparison the docs draw the same for the paired difference (tools/noise.py):

- ``reports/<out>.json`` (what `make compare` reads as the floor) and ``reports/<out>.md``;
- ``plots/<out>/errors.png``: the probes and the errors with their intervals.

Runs from several machines count alike: each pushes its experiments (``dvc exp push``),
the reporting clone pulls them (``dvc exp pull``); the machine is the name's suffix.

    python -m tools.seeds [--set data.dataset=mnist --out seeds_mnist] [--rev HEAD]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd
import yaml

from stages.core.cli import run
from stages.core.io import save_figure, write_json, write_text
from tools import figures, noise, read_report
from tools.experiments import SEED_KEYS, flat, wait
from tools.study import select

# (name, a, b): the paired differences a - b the docs' conclusions rest on; b None: a
# is a difference already.
COMPARISONS = [
    ("AE - VAE, test MSE", "ae.test_mse", "vae.test_mse"),
    ("AE - PCA, test MSE", "ae.test_mse", "pca.test_mse"),
    ("VAE - PCA, test MSE", "vae.test_mse", "pca.test_mse"),
    ("AE - VAE, MLP probe accuracy", "downstream.ae.mlp_test_acc", "downstream.vae.mlp_test_acc"),
    ("AE - VAE, logreg probe accuracy", "downstream.ae.logreg_test_acc", "downstream.vae.logreg_test_acc"),
    ("AE - PCA, MLP probe accuracy", "downstream.ae.mlp_test_acc", "downstream.pca.mlp_test_acc"),
    ("best latent - pixels, same classifier", "downstream.best_latent_minus_pixels", None),
    ("AE - VAE, arithmetic target share", "arithmetic.ae.target_share", "arithmetic.vae.target_share"),
    ("OOD AUROC: NLL - PNG minus NLL", "ood.auroc.vae_nll_minus_png", "ood.auroc.vae_nll"),
    ("OOD AUROC: AE MSE minus NLL", "ood.auroc.ae_mse", "ood.auroc.vae_nll"),
]


def seed_runs(entries: list[dict], overrides: dict) -> list[dict]:
    """The finished runs whose params are the baseline's but for the seed keys (one value
    for all three) and ``overrides`` (``study.select``); the newest per seed. The
    baseline's own run counts when it matches (no override)."""
    base = flat(entries[0]["params"]) if entries else {}
    # a rerun of the baseline's own params (another kernel, `make verify`) is not a seed run
    out = []
    for r in select(entries, overrides, keep=lambda i, e: not (i and flat(e["params"]) == base)):
        e, seed = r["entry"], r["seed"]
        made = re.search(rf"(?:^|-)seed{seed}-(.+)$", e["name"])  # [<tag>-]seed<s>-<machine>, as `make seeds` names them
        out.append({"experiment": e["name"], "seed": seed, "machine": made.group(1) if made else "(commit's own run)",
                    "timestamp": e["timestamp"],
                    "metrics": {k: v for f in e["metrics"].values() for k, v in flat(f).items()}})
    return out


def report(rows: list[dict]) -> dict:
    keys = sorted(set.intersection(*(set(r["metrics"]) for r in rows)))
    metrics = {k: {**noise.summary([r["metrics"][k] for r in rows]), "values": [r["metrics"][k] for r in rows]}
               for k in keys}
    differences = {}
    for name, a, b in COMPARISONS:
        if a not in keys or (b is not None and b not in keys):
            continue
        values = [r["metrics"][a] - (r["metrics"][b] if b else 0.0) for r in rows]
        s = noise.summary(values)
        differences[name] = {**s, "values": values, "excludes_zero": noise.excludes_zero(s)}
    # The differences are a family too: Holm over their one-sample t tests (tools/noise.py).
    p = noise.judge({k: d["mean"] for k, d in differences.items()},
                    {k: (d["sd"] / len(rows) ** 0.5, len(rows) - 1) for k, d in differences.items()}, {})
    for k, d in differences.items():
        d["beyond_after_holm"] = p[k]["verdict"] in ("BEYOND noise", "BEYOND tolerance")
    return {"runs": [{k: r[k] for k in ("experiment", "seed", "machine")} for r in rows],
            "metrics": metrics, "differences": differences}


def fmt(x: float) -> str:
    return f"{x:.5f}" if abs(x) < 0.1 else f"{x:.4f}" if abs(x) < 10 else f"{x:.2f}"


def family_floors(rep: dict) -> dict[str, float | None]:
    """Per metric the floor of one run against another of this configuration: Holm's first
    step over the metrics that move with the seed (tools/noise.py), or the numerical
    tolerance (None) for a metric the seeds do not move."""
    moving = [k for k, s in rep["metrics"].items() if s["sd"] > 0]
    return {k: float(noise.floor(*noise.sd_of_change(s), len(moving))) if s["sd"] > 0 else None
            for k, s in rep["metrics"].items()}


def markdown(rep: dict, title: str) -> str:
    made = ", ".join(f"{r['experiment']} (seed {r['seed']}, {r['machine']})" for r in rep["runs"])
    n = len(rep["runs"])
    floors = family_floors(rep)
    moving = sum(f is not None for f in floors.values())
    lines = [f"{title}: {n} runs that differ only in the training seeds: {made}.", "",
             f"Floor: the smallest change between two single runs of these params that `make compare` flags, "
             f"t with {n - 1} degrees of freedom, Holm over the {moving} metrics that move with the seed "
             f"(5 % family-wise; tools/noise.py). A metric the seeds do not move is judged against a "
             f"tolerance instead: 5e-4 for a share of test images, 1e-4 of its size otherwise.", "",
             "| metric | mean | sd | 95 % interval of the mean | floor for one run vs another |",
             "|---|---|---|---|---|"]
    for key, s in rep["metrics"].items():
        f = floors[key]
        floor = fmt(f) if f is not None else f"tolerance {noise.tolerance(key, s['mean']):.2g}"
        lines.append(f"| {key} | {fmt(s['mean'])} | {fmt(s['sd'])} | [{fmt(s['ci95'][0])}, {fmt(s['ci95'][1])}] | "
                     f"{floor} |")
    lines += ["", "Paired differences (each run's two numbers share its seeds):", "",
              "| difference | mean | sd | 95 % interval | beyond the noise? | after Holm over the "
              f"{len(rep['differences'])} differences |", "|---|---|---|---|---|---|"]
    for name, s in rep["differences"].items():
        verdict = "yes: the interval excludes 0" if s["excludes_zero"] else "no: the interval contains 0"
        lines.append(f"| {name} | {fmt(s['mean'])} | {fmt(s['sd'])} | [{fmt(s['ci95'][0])}, {fmt(s['ci95'][1])}] | "
                     f"{verdict} | {'beyond' if s['beyond_after_holm'] else 'not beyond'} |")
    return "\n".join(lines) + "\n"


def figure(rep: dict, title: str):
    m = rep["metrics"]
    probes = {f"{r} {c}": m[f"downstream.{r}.{c}_test_acc"] for r in ("ae", "vae", "pca") for c in ("logreg", "mlp")
              if f"downstream.{r}.{c}_test_acc" in m}
    probes.update({f"pixels {c}": m[k] for c, k in (("logreg", "classifier.logreg_test_acc"),
                                                    ("mlp", "classifier.test_acc")) if k in m})
    errors = {r.upper(): m[f"{r}.test_mse"] for r in ("ae", "vae", "pca") if f"{r}.test_mse" in m}
    frame = lambda d: pd.DataFrame({"mean": [s["mean"] for s in d.values()],  # noqa: E731
                                    "half_width": [s["half_width"] for s in d.values()]}, index=list(d))
    return figures.error_bars({"test accuracy": frame(probes), "test MSE per pixel, [0, 1]": frame(errors)},
                            f"{title}: mean and 95 % interval over {len(rep['runs'])} seeds")


def rows_of(rep: dict) -> list[dict]:
    """The runs of a written report, each with its metrics, from the values it keeps."""
    return [{**run, "metrics": {k: m["values"][i] for k, m in rep["metrics"].items()}}
            for i, run in enumerate(rep["runs"])]


def main(argv: list[str] | None = None, root: Path = Path(".")) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the baseline commit whose experiments to read")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params these runs set besides the seeds (as given to `make seeds SET=...`)")
    parser.add_argument("--out", default="seeds", help="the report's name: reports/<out>.{json,md}, plots/<out>/")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    parser.add_argument("--refresh", action="store_true",
                        help="no runs: rewrite reports/<out>.* from the values it keeps, by the current rules")
    parser.add_argument("--drop", action="append", default=[], metavar="METRIC",
                        help="with --refresh: a metric whose definition has changed since the runs")
    args = parser.parse_args(argv)
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.refresh:
        old = read_report(root / "reports" / f"{args.out}.json")
        rows = [{**r, "metrics": {k: v for k, v in r["metrics"].items() if k not in args.drop}} for r in rows_of(old)]
        config = old.get("config") or {k: v for k, v in {**flat(yaml.safe_load((root / "params.yaml").read_text())),
                                                         **old.get("params", {})}.items() if k not in SEED_KEYS}
    else:
        entries = wait(args.rev, args.poll, "seeds")
        rows = seed_runs(entries, overrides)
        if len(rows) < 2:
            sys.exit(f"seeds: {len(rows)} finished run(s) of {args.rev} differ only in their seeds; "
                     "a noise floor needs 2 or more: run `make seeds` first")
        config = {k: v for k, v in {**flat(entries[0]["params"]), **overrides}.items() if k not in SEED_KEYS}
    rep = report(rows)
    rep["params"] = overrides if not args.refresh else old.get("params", {})
    rep["config"] = config  # the configuration this floor belongs to (tools/compare.py matches it)
    title = f"{config['data.dataset']}, latent_dim={config['latent_dim']}"
    write_json(root / "reports" / f"{args.out}.json", rep)
    write_text(root / "reports" / f"{args.out}.md", markdown(rep, title))
    save_figure(root / "plots" / args.out / "errors.png", figure(rep, title))
    print(markdown(rep, title))
    return rep


if __name__ == "__main__":
    run(main)
