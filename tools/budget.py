"""Is it the latent size or the training budget? `make budget-report`, after `make budget`.

`make budget` queues, through DVC's own queue, the AE and the VAE trained for each of
BUDGET epochs (both the same) at each of BUDGET_SIZES latent sizes with the training
seeds 0 .. SEEDS_PER_SIZE - 1. This module waits until the queue has nothing queued or
running, reads the finished experiments of the baseline commits (``--rev``, repeatable;
the first names the params the runs must share), keeps the newest run per (size, epochs, seed), takes the
params' own budget at each size from the committed latent-size sweep (reports/sweep*.json:
the same params, seeds 0 .. 2) where it has that size, and writes:

- ``reports/budget.md`` and ``reports/budget.json``: per size and budget the test MSEs,
  the MLP probes, the AE's best epoch and best latent - pixels, mean ± the 95 % half-width
  over the seeds; per size each longer budget against the shortest, judged by its
  interval (Welch's for two seed sets, a one-run interval from the shortest budget's
  seeds when the longer budget has one run); the bottleneck control beside them when
  ``reports/bottleneck.json`` has this dataset;
- ``plots/budget/budget.png``: best latent - pixels and the AE's test MSE against the
  epochs, a line per size.

It runs outside ``dvc repro``: it reads experiments, it is not one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from stages.core.cli import run
from stages.core.io import save_figure, write_json, write_text
from tools import figures, noise, read_report
from tools.experiments import flat, git_json, report_args, report_runs
from tools.study import REPORTS, pm, report_row, run_frame, summarize

REPORT = "budget"
EPOCH_KEYS = ("train_ae.epochs", "train_vae.epochs")
FREE = ("latent_dim", *EPOCH_KEYS)
# The numbers shown, and compared against the shortest budget: (column, digits).
SHOWN = {"best latent - pixels": ("best_minus_pixels", 4), "AE test MSE": ("ae_mse", 5),
         "VAE test MSE": ("vae_mse", 5), "AE MLP probe": ("ae_mlp", 4), "VAE MLP probe": ("vae_mlp", 4)}


def frame(entries: list[dict], overrides: dict | None = None, knn=lambda rev: {}, best_epoch=lambda rev: None):
    """One row per run (``study.run_frame`` with the size and both epoch counts free), the
    runs whose AE and VAE epochs differ dropped; ``epochs`` the budget, ``ae_best_epoch``
    the epoch whose weights the AE kept (``best_epoch(rev)``, nan where unknown)."""
    df = run_frame(entries, overrides, knn, FREE)
    if df.empty:
        return df
    df = df[df["train_ae.epochs"] == df["train_vae.epochs"]].reset_index(drop=True)
    df.insert(1, "epochs", df["train_ae.epochs"])
    df["ae_best_epoch"] = [float("nan") if (b := best_epoch(rev)) is None else b for rev in df["rev"]]
    return df.drop(columns=list(EPOCH_KEYS))


def baseline(summary: pd.DataFrame, root: Path, dataset: str, epochs: int) -> tuple[pd.DataFrame, list[int]]:
    """``summary`` with its rows at the params' own ``epochs`` replaced, size by size, by the
    committed latent-size sweep's (``study.report_row``: the same params over its seeds; the
    baseline commit's own run is one of them), where the sweep has that size; and those sizes."""
    rows = []
    for d in sorted(summary["latent_dim"].unique()):
        r = report_row(root, dataset, int(d))
        if r is not None:
            rows.append({**{c: r.get(c, float("nan")) for c in summary.columns}, "latent_dim": d, "epochs": epochs})
    sizes = [int(r["latent_dim"]) for r in rows]
    if not rows:
        return summary, sizes
    own = summary[~((summary["epochs"] == epochs) & summary["latent_dim"].isin(sizes))]
    return pd.concat([own, pd.DataFrame(rows)[summary.columns]], ignore_index=True) \
        .sort_values(["latent_dim", "epochs"]).reset_index(drop=True), sizes


def _runs(row: pd.Series, col: str) -> dict:
    return noise.from_interval(row[col], row[f"{col}_ci"], row["n"])


def changes(summary: pd.DataFrame) -> list[dict]:
    """Per size, each budget against the shortest: every SHOWN number's mean difference and
    its interval (``noise.mean_difference`` of the two rows' seeds)."""
    out = []
    for d, group in summary.groupby("latent_dim"):
        group = group.sort_values("epochs")
        base = group.iloc[0]
        for _, longer in group.iloc[1:].iterrows():
            for name, (col, _) in SHOWN.items():
                diff = noise.mean_difference(_runs(base, col), _runs(longer, col))
                out.append({"latent_dim": int(d), "from": int(base["epochs"]), "to": int(longer["epochs"]),
                            "number": name, **diff})
    return out


def _verdict(c: dict) -> str:
    if pd.isna(c["half_width"]):
        return "not judged: fewer than 2 runs of the shorter budget"
    how = "one run against the shorter budget's seeds" if c["n_b"] == 1 else "Welch"
    return ("yes" if noise.excludes_zero(c) else "no") + f" ({how})"


def control(dataset: str, sizes: list[int], root: Path) -> dict[int, dict]:
    """Per size the bottleneck control's MLP probe over its seeds (reports/bottleneck.json,
    `make bottleneck`), where that report has this dataset."""
    path = root / "reports" / "bottleneck.json"
    if not path.exists():
        return {}
    runs = read_report(path).get("runs", {}).get(dataset, [])
    return {d: noise.summary(v) for d in sizes if (v := [r["mlp"] for r in runs if r["latent_dim"] == d])}


def markdown(summary: pd.DataFrame, diffs: list[dict], ctrl: dict[int, dict], title: str, note: str = "") -> str:
    lines = [f"# {title}", "",
             "The AE and the VAE trained for each budget (both the same epochs, the one-cycle schedule "
             "stretched to them); everything else the baseline's. Each number: the mean over the seeds "
             "± the half-width of its 95 % interval (Student's t, n - 1 degrees of freedom); test set; "
             "MSE per pixel on [0, 1]; best latent - pixels with the same classifier on both.", "",
             "| latent_dim | epochs | seeds | " + " | ".join(SHOWN) + " | AE best epoch |",
             "|---|---|---|" + "---|" * (len(SHOWN) + 1)]
    for _, r in summary.iterrows():
        cells = [pm(r[c], r[f"{c}_ci"], r["n"], k) for c, k in SHOWN.values()]
        lines.append(f"| {r['latent_dim']} | {r['epochs']} | {r['n']} | " + " | ".join(cells) +
                     f" | {pm(r['ae_best_epoch'], r['ae_best_epoch_ci'], r['n'], 1)} |")
    lines += ["", "Each longer budget against the shortest at the same size (longer - shorter); beyond the "
                  "noise when the 95 % interval excludes 0, each row judged on its own:", "",
              "| latent_dim | epochs | number | change ± 95 % | beyond the noise? |", "|---|---|---|---|---|"]
    digits = {name: k for name, (_, k) in SHOWN.items()}
    for c in diffs:
        lines.append(f"| {c['latent_dim']} | {c['from']} → {c['to']} | {c['number']} | "
                     f"{pm(c['difference'], c['half_width'], 2, digits[c['number']], '+')} | {_verdict(c)} |")
    if ctrl:
        pixels = summary.iloc[0]
        lines += ["", "The bottleneck control (`make bottleneck`: the AE's encoder trained end to end on the labels "
                      "through a d-wide code, 7 epochs), its code's MLP probe: " +
                  "; ".join(f"d = {d}: {pm(s['mean'], s['half_width'], s['n'], 4)} ({s['n']} seeds)"
                            for d, s in ctrl.items()) +
                  f". The pixel MLP: {pm(pixels['pixels_mlp'], pixels['pixels_mlp_ci'], pixels['n'], 4)}."]
    lines += ["", "Runs: " + "; ".join(f"d = {r['latent_dim']}, {r['epochs']} epochs: {r['experiment']}"
                                      for _, r in summary.iterrows()) + "."]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report_args(parser, REPORT, "latent_dim, the epochs")
    args = parser.parse_args(argv)
    revs, overrides, entries = report_runs(args, "budget")
    df = frame(entries, overrides, knn=lambda rev: git_json(rev, "reports/downstream.json"),
               best_epoch=lambda rev: git_json(rev, "reports/train_ae.json").get("best_epoch"))
    params = {**flat(entries[0]["params"]), **overrides} if entries else {}
    dataset = params.get("data.dataset")
    summary, swept = (df, []) if df.empty else baseline(summarize(df, ["latent_dim", "epochs"]), root, dataset,
                                                         params["train_ae.epochs"])
    if summary.empty or summary["epochs"].nunique() < 2:
        sys.exit(f"budget: the experiments of {', '.join(revs)} and the committed sweep have fewer than two "
                 "budgets with metrics; run `make budget` first (and name the commit of earlier runs with --rev)")
    diffs = changes(summary)
    ctrl = control(dataset, sorted(df["latent_dim"].unique().tolist()), root)
    title = f"Latent size or training budget, {dataset}"
    note = (f"The {params['train_ae.epochs']}-epoch rows at d = {', '.join(map(str, swept))} are the committed "
            f"latent-size sweep's (reports/{REPORTS[dataset]}.json): the same params, its seeds.") if swept else ""
    text = markdown(summary, diffs, ctrl, title, note)
    write_text(root / "reports" / f"{args.out}.md", text)
    write_json(root / "reports" / f"{args.out}.json", {
        "dataset": dataset, "params": overrides,
        "runs": df.drop(columns=["timestamp"]).to_dict("records"),
        "budgets": summary.drop(columns="experiment").to_dict("records"), "from_sweep": swept, "changes": diffs,
        "control": {str(d): s for d, s in ctrl.items()}})
    pixels = summary.sort_values("epochs").groupby("latent_dim")["pixels_mlp"].first()  # the shortest budget's seeds
    save_figure(root / "plots" / args.out / "budget.png",
                figures.budget(summary, {d: c["mean"] - pixels[d] for d, c in ctrl.items()}))
    print(text)
    return summary


if __name__ == "__main__":
    run(main)
