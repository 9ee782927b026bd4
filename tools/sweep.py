"""The latent-size sweep's report: `make sweep-report`, after `make sweep`.

`make sweep` queues one experiment per latent size in DVC's own queue
(``dvc exp run --queue -S latent_dim=...``) and starts its workers (``dvc queue start``);
several machines sharing the DVC remote can each run a queue the same way. This module
waits until the queue has nothing queued or running, reads the finished experiments of
the baseline commit with ``dvc exp show --json`` (the baseline's own run counts as a
point; ``--rev`` again adds an earlier commit's runs, a sweep queued in parts; ``--keep``
keeps the sizes of the earlier report that the runs lack, where their experiments are
gone), keeps the newest per latent size, and writes:

- ``reports/sweep.md``: one row per latent size, naming the experiment that gave it;
- ``plots/sweep/mse.csv`` (test MSE of AE, VAE, PCA) and ``plots/sweep/accuracy.csv``
  (test accuracy of both probes on each representation, and the pixel baselines), for
  ``dvc plots show`` (dvc.yaml's ``sweep_*`` plots, x = latent_dim);
- ``plots/sweep/sweep.png``: both against d, the pixel baselines as lines.

It runs outside ``dvc repro``: it reads experiments, it is not one.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from stages.core.cli import run
from stages.core.io import save_figure, write_csv, write_json, write_text
from tools import figures, read_report
from tools.experiments import flat, git_json, report_args, report_runs
from tools.study import MSE, PAIRED, PIXELS, cell, run_frame, summarize

REPORT = "sweep"  # reports/<out>.{md,json} and plots/<out>/, <out> sweep unless --out names another
PROBES = ("logreg", "mlp", "knn5")


def table(entries: list[dict], overrides: dict | None = None, knn=lambda rev: {}) -> pd.DataFrame:
    """One row per latent size (``run_frame`` with latent_dim free, then ``summarize``)."""
    df = run_frame(entries, overrides, knn)
    return summarize(df, ["latent_dim"]) if not df.empty else df


def keep(df: pd.DataFrame, path: Path, dataset: str, overrides: dict) -> tuple[pd.DataFrame, list[int]]:
    """``df`` with the sizes of the earlier report at ``path`` that its runs lack (a sweep run
    in parts: each size is summarized over its own seeds, so a size's row stands alone), and
    those sizes. The earlier report must be of the same dataset and params."""
    old = read_report(path)
    if old.get("dataset") != dataset or old.get("params", {}) != overrides:
        sys.exit(f"sweep: {path} is of {old.get('dataset')} with {old.get('params')}, not {dataset} with "
                 f"{overrides}; --keep adds sizes of the same sweep only")
    rows = [{**r, "experiment": old["runs"][str(r["latent_dim"])]} for r in old["sizes"]
            if r["latent_dim"] not in set(df["latent_dim"])]
    if not rows:
        return df, []
    merged = pd.concat([df, pd.DataFrame(rows)[df.columns]], ignore_index=True)
    return merged.sort_values("latent_dim").reset_index(drop=True), [r["latent_dim"] for r in rows]


def _verdict(r, c: str) -> str:
    if r["n"] < 2 or pd.isna(r[c]):
        return "one run: not judged"
    low, high = r[c] - r[f"{c}_ci"], r[c] + r[f"{c}_ci"]
    return "yes: the interval excludes 0" if low > 0 or high < 0 else "no: the interval contains 0"


def markdown(df: pd.DataFrame, title: str, kept: str = "") -> str:
    """The tables; with several seeds per size each number is its mean ± the 95 % half-width
    over that size's own seeds (t with n - 1 dof), and a paired difference is judged by
    whether its interval excludes 0. ``kept``: a sentence on sizes kept from an earlier report."""
    lines = [f"# {title}", "", "Each number: the mean over the size's seeds ± the half-width of its 95 % interval "
             "(Student's t, n - 1 degrees of freedom); test set; MSE per pixel on [0, 1].", "",
             "| latent_dim | seeds | AE MSE | VAE MSE | PCA MSE | VAE active units | best latent - pixels |",
             "|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {r['latent_dim']} | {r['n']} | " + " | ".join(cell(r, f"{x}_mse", 5) for x in MSE) +
                     f" | {cell(r, 'vae_active_units', 1)} | {cell(r, 'best_minus_pixels', 4)} |")
    lines += ["", "Probes on each representation, logistic regression / MLP / 5-NN:", "",
              "| latent_dim | AE | VAE | PCA |", "|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {r['latent_dim']} | " + " | ".join(
            " / ".join(cell(r, f"{x}_{c}", 4) for c in PROBES) for x in MSE) + " |")
    last = df.iloc[-1]
    lines += ["", f"Pixels, the line to reach (the same at every size): logreg {cell(last, 'pixels_logreg', 4)}, "
                  f"MLP {cell(last, 'pixels_mlp', 4)}.", "",
              "Paired differences per size, each run's two numbers from the same seeds:", "",
              "| latent_dim | difference | mean ± 95 % | beyond the noise? |", "|---|---|---|---|"]
    for _, r in df.iterrows():
        for name in PAIRED:
            lines.append(f"| {r['latent_dim']} | {name} | {cell(r, name, 4)} | {_verdict(r, name)} |")
    lines += ["", "Runs: " + "; ".join(f"d = {r['latent_dim']}: {r['experiment']}" for _, r in df.iterrows()) + "."]
    if kept:
        lines += ["", kept]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report_args(parser, REPORT, "latent_dim")
    parser.add_argument("--keep", action="store_true",
                        help="keep the sizes of the earlier reports/<out>.json that these runs lack (a sweep run in parts)")
    args = parser.parse_args(argv)
    revs, overrides, entries = report_runs(args, "sweep")
    df = table(entries, overrides, knn=lambda rev: git_json(rev, "reports/downstream.json"))
    if df.empty:
        sys.exit(f"sweep: no finished experiment of {', '.join(revs)} has metrics; run `make sweep` first")
    dataset = {**flat(entries[0]["params"]), **overrides}["data.dataset"]
    title = f"Latent-size sweep, {dataset}"
    report = root / "reports" / f"{args.out}.json"
    kept, note = [], ""
    if args.keep and report.exists():
        df, kept = keep(df, report, dataset, overrides)
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(report.relative_to(root))], cwd=root,
                                capture_output=True, text=True).stdout.strip()
        note = (f"Sizes {', '.join(map(str, kept))}: kept from the earlier report ({report.name}"
                f"{' as committed in ' + commit if commit else ''}), whose runs are named above.") if kept else ""
    plots_dir = root / "plots" / args.out
    write_text(root / "reports" / f"{args.out}.md", markdown(df, title, note))
    write_json(report, {"dataset": dataset, "params": overrides,
                        "sizes": df.drop(columns="experiment").to_dict("records"),
                        "runs": dict(zip(df["latent_dim"].astype(str), df["experiment"])), "kept": kept})
    write_csv(plots_dir / "mse.csv", df[["latent_dim", "n", "experiment", *(f"{r}_mse" for r in MSE)]])
    write_csv(plots_dir / "accuracy.csv", df[["latent_dim", "n", "experiment",
                                              *(f"{r}_{c}" for r in MSE for c in ("logreg", "mlp")), *PIXELS]])
    save_figure(plots_dir / "sweep.png", figures.sweep(df, list(MSE)))
    print(markdown(df, title, note))
    return df


if __name__ == "__main__":
    run(main)
