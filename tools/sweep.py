"""The latent-size sweep: `make sweep` queues a run per size and seed, `make sweep-report`
writes reports/<out>.{md,json} and plots/<out>/ ({mse,accuracy}.csv for `dvc plots show`,
sweep.png). ``--keep``: the earlier report's sizes these runs lack (a sweep run in parts).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from stages.core.cli import run
from stages.core.io import write_csv
from tools import figures, study
from tools.experiments import flat
from tools.study import REPS, VERDICT, Study, beyond, cell

STUDY = Study("sweep", grid={"latent_dim": [2, 4, 8, 16, 32]}, seeds=[0], reports=("downstream",),
              numbers=study.latents, paired=("AE - VAE, test MSE", "AE - VAE, MLP probe accuracy",
                                             "AE - VAE, 5-NN accuracy", "AE - PCA, MLP probe accuracy",
                                             "best latent - pixels, same classifier"))
PIXELS = ("pixels_logreg", "pixels_mlp")


def table(entries: list[dict], overrides: dict | None = None) -> pd.DataFrame:
    """One row per latent size, its numbers over its seeds."""
    df = study.frame(STUDY, entries, overrides)
    return study.summarize(df, ["latent_dim"]) if len(df) else df


def keep(df: pd.DataFrame, old: dict, dataset: str, overrides: dict) -> tuple[pd.DataFrame, list[int]]:
    """``df`` with the sizes of the earlier report ``old`` that it lacks (each size stands
    alone: summarized over its own seeds), and those sizes; ``old`` of the same sweep only."""
    if old.get("dataset") != dataset or old.get("params", {}) != overrides:
        sys.exit(f"sweep: the earlier report is of {old.get('dataset')} with {old.get('params')}, not {dataset} "
                 f"with {overrides}; --keep adds sizes of the same sweep only")
    rows = [{**r, "experiment": old["runs"][str(r["latent_dim"])]} for r in old["sizes"]
            if r["latent_dim"] not in set(df["latent_dim"])]
    merged = pd.concat([df, pd.DataFrame(rows).reindex(columns=df.columns)], ignore_index=True) if rows else df
    return merged.sort_values("latent_dim").reset_index(drop=True), [r["latent_dim"] for r in rows]


def markdown(df: pd.DataFrame, title: str, kept: str = "") -> str:
    lines = [f"# {title}", "", "Each number: the mean over the size's seeds ± the half-width of its 95 % interval "
             "(Student's t, n - 1 degrees of freedom); test set; MSE per pixel on [0, 1].", "",
             "| latent_dim | seeds | AE MSE | VAE MSE | PCA MSE | VAE active units | best latent - pixels |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['latent_dim']} | {r['n']} | " + " | ".join(cell(r, f"{x}_mse", 5) for x in REPS) +
              f" | {cell(r, 'vae_active_units', 1)} | {cell(r, 'best_minus_pixels', 4)} |" for _, r in df.iterrows()]
    lines += ["", "Probes on each representation, logistic regression / MLP / 5-NN:", "",
              "| latent_dim | AE | VAE | PCA |", "|---|---|---|---|"]
    lines += [f"| {r['latent_dim']} | " + " | ".join(" / ".join(cell(r, f"{x}_{c}", 4) for c in ("logreg", "mlp", "knn5"))
                                                    for x in REPS) + " |" for _, r in df.iterrows()]
    last = df.iloc[-1]
    lines += ["", f"Pixels, the line to reach (the same at every size): logreg {cell(last, 'pixels_logreg', 4)}, "
                  f"MLP {cell(last, 'pixels_mlp', 4)}.", "",
              "Paired differences per size, each run's two numbers from the same seeds:", "",
              "| latent_dim | difference | mean ± 95 % | beyond the noise? |", "|---|---|---|---|"]
    lines += [f"| {r['latent_dim']} | {name} | {cell(r, name, 4)} | {VERDICT[beyond(r[name], r[name + '_ci'], r['n'])]} |"
              for _, r in df.iterrows() for name in STUDY.paired if name in r]
    lines += ["", "Runs: " + "; ".join(f"d = {r['latent_dim']}: {r['experiment']}" for _, r in df.iterrows()) + "."]
    return "\n".join(lines + (["", kept] if kept else [])) + "\n"


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame | None:
    parser = study.arguments(STUDY, __doc__)
    parser.add_argument("--keep", action="store_true", help="keep the earlier report's sizes these runs lack")
    args = parser.parse_args(argv)
    if (got := study.start(STUDY, args)) is None:
        return None
    overrides, entries = got
    rows = study.frame(STUDY, entries, overrides)
    if rows.empty:
        sys.exit(f"sweep: no finished experiment of {', '.join(args.rev or ['HEAD'])} has metrics; "
                 "run `make sweep` first")
    df = study.summarize(rows, ["latent_dim"])
    dataset = {**flat(entries[0]["params"]), **overrides}["data.dataset"]
    report, kept, note = root / "reports" / f"{args.out}.json", [], ""
    if args.keep and report.exists():
        df, kept = keep(df, study.read_report(report), dataset, overrides)
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(report.relative_to(root))], cwd=root,
                                capture_output=True, text=True).stdout.strip()
        note = (f"Sizes {', '.join(map(str, kept))}: kept from the earlier report ({report.name}"
                f"{' as committed in ' + commit if commit else ''}), whose runs are named above.") if kept else ""
    title, plots = f"Latent-size sweep, {dataset}", root / "plots" / args.out
    write_csv(plots / "mse.csv", df[["latent_dim", "n", "experiment", *(f"{r}_mse" for r in REPS)]])
    write_csv(plots / "accuracy.csv", df[["latent_dim", "n", "experiment", *(f"{r}_{c}" for r in REPS for c in
                                                                              ("logreg", "mlp")), *PIXELS]])
    study.write(root, args.out, markdown(df, title, note), {
        "dataset": dataset, "params": overrides, "sizes": df.drop(columns="experiment").to_dict("records"),
        "runs": dict(zip(df["latent_dim"].astype(str), df["experiment"])), "kept": kept,
        "rows": rows.to_dict("records")}, {"sweep.png": figures.sweep(df, list(REPS))})
    return df


if __name__ == "__main__":
    run(main)
