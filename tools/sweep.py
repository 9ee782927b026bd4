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
from tools import figures, noise, read_report
from tools.experiments import SEED_KEYS, flat, git_json, report_args, report_runs

REPORT = "sweep"  # reports/<out>.{md,json} and plots/<out>/, <out> sweep unless --out names another
REPORTS = {"fashion_mnist": "sweep", "mnist": "sweep_mnist"}  # each dataset's <out>, as docs/experiments.md runs it
MSE = {"ae": ("metrics/train_ae.json", "ae", "test_mse"), "vae": ("metrics/train_vae.json", "vae", "test_mse"),
       "pca": ("metrics/evaluate.json", "pca", "test_mse")}
PIXELS = {"pixels_logreg": "logreg_test_acc", "pixels_mlp": "test_acc"}
PROBES = ("logreg", "mlp", "knn5")
# Per run a - b, both from the same run (its seeds, its data): judged by the size's own seeds.
PAIRED = {"AE - VAE, test MSE": ("ae_mse", "vae_mse"), "AE - VAE, MLP probe": ("ae_mlp", "vae_mlp"),
          "AE - VAE, 5-NN": ("ae_knn5", "vae_knn5"), "AE - PCA, MLP probe": ("ae_mlp", "pca_mlp"),
          "best latent - pixels, same classifier": ("best_minus_pixels", None)}


def _free(params: dict, overrides: dict, free: tuple[str, ...] = ("latent_dim",)) -> dict:
    """The params a sweep point may not change: all but ``free`` and the training seeds."""
    return {k: v for k, v in {**flat(params), **overrides}.items() if k not in free and k not in SEED_KEYS}


def run_row(e: dict, knn: dict | None = None) -> dict:
    """One run's numbers; ``knn``: its reports/downstream.json (5-NN lives there, not in metrics)."""
    m = e["metrics"]
    down = m["metrics/downstream.json"]["downstream"]
    classifier = m["metrics/train_classifier.json"]["classifier"]
    row = {f"{r}_mse": m[f][k][key] for r, (f, k, key) in MSE.items()}
    row.update({f"{r}_{c}": down[r][f"{c}_test_acc"] for r in MSE for c in ("logreg", "mlp")})
    row.update({f"{r}_knn5": (knn or {}).get(r, {}).get("knn", {}).get("k=5", {}).get("test_acc", float("nan"))
                for r in MSE})
    row.update({name: classifier[key] for name, key in PIXELS.items()})
    row["best_minus_pixels"] = down["best_latent_minus_pixels"]
    row["vae_active_units"] = m["metrics/train_vae.json"]["vae"]["active_units"]
    for name, (a, b) in PAIRED.items():
        row[name] = row[a] - (row[b] if b else 0.0)
    return row


def run_frame(entries: list[dict], overrides: dict | None = None, knn=lambda rev: {},
              free: tuple[str, ...] = ("latent_dim",)) -> pd.DataFrame:
    """One row per run among those whose params differ from the baseline's (the first entry,
    with ``overrides``) in the ``free`` params and the training seeds alone (one value for
    the three): the newest run per (free params, seed), with its numbers (``run_row``) and
    a column per free param. ``knn(rev)``: a run's reports/downstream.json."""
    overrides = overrides or {}
    rows = []
    fixed = _free(entries[0]["params"], overrides, free) if entries else {}
    for e in entries:
        params = flat(e["params"])
        if e["state"] != "success" or any(params.get(k) is None for k in free) \
                or "metrics/downstream.json" not in e["metrics"]:
            continue
        seeds = {params.get(k) for k in SEED_KEYS}
        if _free(e["params"], {}, free) != fixed or len(seeds) != 1:
            continue  # another experiment (another dataset, another model): not this sweep
        rows.append({**{k: params[k] for k in free}, "seed": seeds.pop(), "experiment": e["name"],
                     "timestamp": e["timestamp"], "rev": e.get("rev", "")})
    if not rows:
        return pd.DataFrame()
    by_name = {e["name"]: e for e in entries}
    df = pd.DataFrame(rows).sort_values([*free, "seed", "timestamp"])
    df = df.groupby([*free, "seed"], dropna=False).tail(1).reset_index(drop=True)
    return pd.concat([df, pd.DataFrame(
        [run_row(by_name[n], knn(by_name[n].get("rev", ""))) for n in df["experiment"]])], axis=1)


def summarize(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per value of ``by`` the mean of each number over its seeds, ``n`` the seeds and
    ``<number>_ci`` the half-width of its 95 % interval (t with n - 1 dof; 0 for one seed)."""
    numbers = [c for c in df.columns if c not in (*by, "seed", "experiment", "timestamp", "rev")
               and pd.api.types.is_numeric_dtype(df[c])]
    out = []
    for key, group in df.groupby(by):
        row = {**dict(zip(by, key if isinstance(key, tuple) else (key,))),
               "experiment": " ".join(group["experiment"]), "n": len(group)}
        for c in numbers:
            s = noise.summary(group[c].tolist())
            row[c], row[f"{c}_ci"] = s["mean"], (s["half_width"] if len(group) > 1 else 0.0)
        out.append(row)
    return pd.DataFrame(out)


def table(entries: list[dict], overrides: dict | None = None, knn=lambda rev: {}) -> pd.DataFrame:
    """One row per latent size (``run_frame`` with latent_dim free, then ``summarize``)."""
    df = run_frame(entries, overrides, knn)
    return summarize(df, ["latent_dim"]) if not df.empty else df


def report_row(root: Path, dataset: str, d: int) -> dict | None:
    """The committed sweep's numbers at size ``d`` for ``dataset`` (reports/sweep*.json,
    ``experiment`` its runs), if it has them."""
    path = root / "reports" / f"{REPORTS[dataset]}.json"
    if not path.exists():
        return None
    rep = read_report(path)
    row = next((r for r in rep.get("sizes", []) if r.get("latent_dim") == d), None)
    return row and {**row, "experiment": rep.get("runs", {}).get(str(d), "")}


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


def _cell(r, c: str, digits: int) -> str:
    if pd.isna(r[c]):
        return "–"
    return f"{r[c]:.{digits}f}" + (f" ± {r[f'{c}_ci']:.{digits}f}" if r["n"] > 1 else "")


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
        lines.append(f"| {r['latent_dim']} | {r['n']} | " + " | ".join(_cell(r, f"{x}_mse", 5) for x in MSE) +
                     f" | {_cell(r, 'vae_active_units', 1)} | {_cell(r, 'best_minus_pixels', 4)} |")
    lines += ["", "Probes on each representation, logistic regression / MLP / 5-NN:", "",
              "| latent_dim | AE | VAE | PCA |", "|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {r['latent_dim']} | " + " | ".join(
            " / ".join(_cell(r, f"{x}_{c}", 4) for c in PROBES) for x in MSE) + " |")
    last = df.iloc[-1]
    lines += ["", f"Pixels, the line to reach (the same at every size): logreg {_cell(last, 'pixels_logreg', 4)}, "
                  f"MLP {_cell(last, 'pixels_mlp', 4)}.", "",
              "Paired differences per size, each run's two numbers from the same seeds:", "",
              "| latent_dim | difference | mean ± 95 % | beyond the noise? |", "|---|---|---|---|"]
    for _, r in df.iterrows():
        for name in PAIRED:
            lines.append(f"| {r['latent_dim']} | {name} | {_cell(r, name, 4)} | {_verdict(r, name)} |")
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
