"""The latent-size sweep's report: `make sweep-report`, after `make sweep`.

`make sweep` queues one experiment per latent size in DVC's own queue
(``dvc exp run --queue -S latent_dim=...``) and starts its workers (``dvc queue start``);
several machines sharing the DVC remote can each run a queue the same way. This module
waits until the queue has nothing queued or running, reads the finished experiments of
the baseline commit with ``dvc exp show --json`` (the baseline's own run counts as a
point), keeps the newest per latent size, and writes:

- ``reports/sweep.md``: one row per latent size, naming the experiment that gave it;
- ``plots/sweep/mse.csv`` (test MSE of AE, VAE, PCA) and ``plots/sweep/accuracy.csv``
  (test accuracy of both probes on each representation, and the pixel baselines), for
  ``dvc plots show`` (dvc.yaml's ``sweep_*`` plots, x = latent_dim);
- ``plots/sweep/sweep.png``: both against d, the pixel baselines as lines.

It runs outside ``dvc repro``: it reads experiments, it is not one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stages.core import plots  # noqa: E402
from stages.core.io import save_figure, write_csv, write_text  # noqa: E402
from tools import noise  # noqa: E402
from tools.experiments import SEED_KEYS, flat, runs, wait  # noqa: E402
from tools import cli  # noqa: E402

REPORT = Path("reports/sweep.md")
PLOTS_DIR = Path("plots/sweep")
MSE = {"ae": ("metrics/train_ae.json", "ae", "test_mse"), "vae": ("metrics/train_vae.json", "vae", "test_mse"),
       "pca": ("metrics/evaluate.json", "pca", "test_mse")}
PIXELS = {"pixels_logreg": "logreg_test_acc", "pixels_mlp": "test_acc"}


def _free(params: dict) -> dict:
    """The params a sweep point may not change: all but latent_dim and the training seeds."""
    return {k: v for k, v in flat(params).items() if k != "latent_dim" and k not in SEED_KEYS}


def table(entries: list[dict]) -> pd.DataFrame:
    """One row per latent size among the runs whose params differ from the baseline's (the
    first entry) in ``latent_dim`` and the training seeds alone (one value for the three):
    the newest run per (size, seed), then per size the mean of each number over its seeds,
    ``n`` the seeds and ``<number>_ci`` the half-width of its 95 % interval (0 for one seed)."""
    rows = []
    fixed = _free(entries[0]["params"]) if entries else {}
    for e in entries:
        m, d = e["metrics"], e["params"].get("latent_dim")
        if e["state"] != "success" or d is None or "metrics/downstream.json" not in m:
            continue
        seeds = {flat(e["params"]).get(k) for k in SEED_KEYS}
        if _free(e["params"]) != fixed or len(seeds) != 1:
            continue  # another experiment (another dataset, another model): not this sweep
        down = m["metrics/downstream.json"]["downstream"]
        classifier = m["metrics/train_classifier.json"]["classifier"]
        row = {"latent_dim": d, "seed": seeds.pop(), "experiment": e["name"], "timestamp": e["timestamp"]}
        row.update({f"{r}_mse": m[f][k][key] for r, (f, k, key) in MSE.items()})
        row.update({f"{r}_{c}": down[r][f"{c}_test_acc"] for r in MSE for c in ("logreg", "mlp")})
        row.update({name: classifier[key] for name, key in PIXELS.items()})
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows).sort_values(["latent_dim", "seed", "timestamp"])
    df = df.groupby(["latent_dim", "seed"], dropna=False).tail(1)
    numbers = [c for c in df.columns if c not in ("latent_dim", "seed", "experiment", "timestamp")]
    out = []
    for d, group in df.groupby("latent_dim"):
        row = {"latent_dim": d, "experiment": " ".join(group["experiment"]), "n": len(group)}
        for c in numbers:
            s = noise.summary(group[c].tolist())
            row[c], row[f"{c}_ci"] = s["mean"], (s["half_width"] if len(group) > 1 else 0.0)
        out.append(row)
    return pd.DataFrame(out)


def markdown(df: pd.DataFrame) -> str:
    """The table; with several seeds per size each number is its mean ± the 95 % half-width."""
    def cell(r, c: str, digits: int) -> str:
        return f"{r[c]:.{digits}f}" + (f" ± {r[f'{c}_ci']:.{digits}f}" if r["n"] > 1 else "")

    lines = ["| latent_dim | seeds | experiment | AE MSE | VAE MSE | PCA MSE | AE logreg / MLP | VAE logreg / MLP | "
             "PCA logreg / MLP |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {r['latent_dim']} | {r['n']} | {r['experiment']} | " + " | ".join(
            cell(r, f"{x}_mse", 5) for x in MSE) + " | " + " | ".join(
            f"{cell(r, f'{x}_logreg', 4)} / {cell(r, f'{x}_mlp', 4)}" for x in MSE) + " |")
    last = df.iloc[-1]
    lines.append(f"\nPixels (not rerun): logreg {last['pixels_logreg']:.4f}, MLP {last['pixels_mlp']:.4f}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the baseline commit whose experiments to read")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    args = parser.parse_args(argv)
    df = table(wait(args.rev, args.poll))
    if df.empty:
        sys.exit(f"sweep: no finished experiment of {args.rev} has metrics; run `make sweep` first")
    write_text(root / REPORT, markdown(df))
    write_csv(root / PLOTS_DIR / "mse.csv", df[["latent_dim", "n", "experiment", *(f"{r}_mse" for r in MSE)]])
    write_csv(root / PLOTS_DIR / "accuracy.csv", df[["latent_dim", "n", "experiment",
                                                      *(f"{r}_{c}" for r in MSE for c in ("logreg", "mlp")),
                                                      *PIXELS]])
    save_figure(root / PLOTS_DIR / "sweep.png", plots.sweep(df, list(MSE)))
    print(markdown(df))
    return df


if __name__ == "__main__":
    cli(main)
