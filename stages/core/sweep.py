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
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import pandas as pd

from . import noise
from .io import atomic_path, save_figure, write_csv

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPORT = Path("reports/sweep.md")
PLOTS_DIR = Path("plots/sweep")
MSE = {"ae": ("metrics/train_ae.json", "ae", "test_mse"), "vae": ("metrics/train_vae.json", "vae", "test_mse"),
       "pca": ("metrics/evaluate.json", "pca", "test_mse")}
PIXELS = {"pixels_logreg": "logreg_test_acc", "pixels_mlp": "test_acc"}
PENDING = {"queued", "running"}


def dvc_exp_show(rev: str) -> list[dict]:
    out = subprocess.run(["dvc", "exp", "show", "--json", "--rev", rev], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def runs(show: list[dict], workspace: bool = False) -> list[dict]:
    """The baseline commits' runs and their experiments, as {name, baseline, state,
    timestamp, params, metrics}, from ``dvc exp show --json`` (the workspace entry only if
    asked). ``baseline`` names the commit a run belongs to (a commit's own run: its own
    name). ``state`` is the queue's (queued, running, success, failed); a run outside the
    queue has none and counts as a success."""
    out = []

    def entry(node: dict, name: str, baseline: str, state: str) -> dict:
        data = node.get("data") or {}
        files = lambda kind: {f: (v or {}).get("data", {}) for f, v in (data.get(kind) or {}).items()}
        return {"name": name, "baseline": baseline, "state": state, "timestamp": data.get("timestamp") or "",
                "params": files("params").get("params.yaml", {}), "metrics": files("metrics")}

    for commit in show:
        if commit.get("rev") == "workspace":
            if workspace:
                out.append(entry(commit, "workspace", "workspace", "success"))
            continue
        name = commit.get("name") or commit["rev"][:7]
        out.append(entry(commit, name, name, "success"))
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            for rev in exp.get("revs") or []:
                out.append(entry(rev, rev.get("name") or exp.get("name") or rev["rev"][:7], name, state))
    return out


SEED_KEYS = ("train_classifier.seed", "train_ae.seed", "train_vae.seed")


def flat(tree: dict, prefix: str = "") -> dict:
    """{"train_ae": {"seed": 0}} -> {"train_ae.seed": 0}: params and metrics as DVC names them."""
    out = {}
    for key, value in (tree or {}).items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


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


def figure(df: pd.DataFrame):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {r: f"C{i}" for i, r in enumerate(MSE)}
    for r in MSE:  # error bars: the 95 % interval over the seeds per size (none for one seed)
        left.errorbar(df["latent_dim"], df[f"{r}_mse"], yerr=df[f"{r}_mse_ci"], marker="o", capsize=3,
                      color=colors[r], label=r.upper())
        for c, style in (("mlp", "-"), ("logreg", "--")):
            right.errorbar(df["latent_dim"], df[f"{r}_{c}"], yerr=df[f"{r}_{c}_ci"], fmt=style, marker="o", capsize=3,
                           color=colors[r], label=f"{r.upper()} {c}")
    for name, style in (("pixels_mlp", "-"), ("pixels_logreg", "--")):
        right.axhline(df[name].iloc[-1], color="black", linestyle=style, linewidth=1,
                      label=f"pixels {name.split('_')[1]}")
    left.set(ylabel="test MSE per pixel, [0, 1] scale", title="Reconstruction")
    right.set(ylabel="test accuracy", title="Probes on the latents (pixels: black)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(df["latent_dim"], [str(d) for d in df["latent_dim"]])
        ax.set_xlabel("latent_dim")
    left.legend(fontsize=8)
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


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


def wait(rev: str, poll: float, who: str = "sweep") -> list[dict]:
    """The runs of ``rev`` once none is queued or running. Queued runs with none running
    on two looks in a row mean no worker: stop and say so rather than wait forever."""
    idle = 0
    while True:
        entries = runs(dvc_exp_show(rev))
        pending = [e["name"] for e in entries if e["state"] in PENDING]
        if not pending:
            return entries
        idle = idle + 1 if all(e["state"] == "queued" for e in entries if e["state"] in PENDING) else 0
        if idle >= 2:
            sys.exit(f"{who}: {len(pending)} experiment(s) queued but none running; start the workers with "
                     f"`dvc queue start` (or `make {who}`), then run this again")
        print(f"{who}: waiting for {len(pending)} experiment(s): {', '.join(pending)}", flush=True)
        time.sleep(poll)


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the baseline commit whose experiments to read")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    args = parser.parse_args(argv)
    df = table(wait(args.rev, args.poll))
    if df.empty:
        sys.exit(f"sweep: no finished experiment of {args.rev} has metrics; run `make sweep` first")
    with atomic_path(root / REPORT) as tmp:
        tmp.write_text(markdown(df))
    write_csv(root / PLOTS_DIR / "mse.csv", df[["latent_dim", "n", "experiment", *(f"{r}_mse" for r in MSE)]])
    write_csv(root / PLOTS_DIR / "accuracy.csv", df[["latent_dim", "n", "experiment",
                                                      *(f"{r}_{c}" for r in MSE for c in ("logreg", "mlp")),
                                                      *PIXELS]])
    save_figure(root / PLOTS_DIR / "sweep.png", figure(df))
    print(markdown(df))
    return df


if __name__ == "__main__":
    main()
