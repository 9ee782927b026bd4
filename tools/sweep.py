"""The latent-size sweep: `make sweep` queues a run per size and seed, `make sweep-report`
writes reports/<out>.{md,json} and plots/<out>/ ({mse,accuracy}.csv for `dvc plots show`,
sweep.png). A sweep run in parts merges its report's rows with the new runs (tools/study.py);
``--reuse``: no runs, the report rewritten from its JSON by the current rule (its rows flagged against
the workspace's code where that keeps them fresh: study.stored).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from stages.core.cli import run
from stages.core.io import write_csv
from tools import figures, noise, study
from tools.experiments import flat
from tools.study import LATENTS, PAIRED, REPS, Study, cell

STUDY = Study("sweep", grid={"latent_dim": [2, 4, 8, 16, 32]}, seeds=[0], reports=("downstream",),
              numbers=study.latents, paired=("AE - VAE, test MSE", "AE - VAE, MLP probe accuracy",
                                             "AE - VAE, 5-NN accuracy", "AE - PCA, MLP probe accuracy",
                                             "best latent - pixels, same classifier",
                                             "AE - VAE active units, MLP probe accuracy"))
PIXELS = ("pixels_logreg", "pixels_mlp")
# The differences' names in reports written before PAIRED named their unit.
RENAMED = {"AE - VAE, MLP probe": "AE - VAE, MLP probe accuracy", "AE - VAE, 5-NN": "AE - VAE, 5-NN accuracy",
           "AE - PCA, MLP probe": "AE - PCA, MLP probe accuracy"}
TEST = "paired t on the per-seed differences (each run's two numbers share its seeds; n - 1 dof)"


def table(entries: list[dict], overrides: dict | None = None) -> pd.DataFrame:
    """One row per latent size, its numbers over its seeds."""
    df = study.frame(STUDY, entries, overrides)
    return study.summarize(df, ["latent_dim"]) if len(df) else df


def judged(df: pd.DataFrame, rows: pd.DataFrame | None = None) -> dict[tuple[int, str], dict]:
    """Each size's paired differences judged as one family (``study.judge``): the paired t on the
    per-run ``rows`` where the report keeps them (with the test images' se where every run gives
    it), else on each difference's mean and half-width over its n seeds (the same test: the two are
    sufficient for it)."""
    short = {v: k for k, v in LATENTS.items()}
    tests, references = {}, {}
    for _, r in df.iterrows():
        d = int(r["latent_dim"])
        for name in STUDY.paired:
            if name not in r or pd.isna(r[name]):
                continue
            runs = rows[rows["latent_dim"] == d] if rows is not None and name in rows else []
            tests[(d, name)] = noise.with_test_images(noise.paired_test(runs[name].tolist()), [
                t.get(name) for t in runs["test_images"]]) if len(runs) else \
                noise.paired_from_interval(r[name], r[f"{name}_ci"], int(r["n"]))
            references[(d, name)] = r.get(short.get(PAIRED[name][1] or ""), float("nan"))
    return study.judge(tests, references)


def markdown(df: pd.DataFrame, title: str, note: str = "", verdicts: dict | None = None) -> str:
    verdicts = judged(df) if verdicts is None else verdicts
    lines = [f"# {title}", "", "Each number: the mean over the size's seeds ± the half-width of its 95 % interval "
             "(Student's t, n - 1 degrees of freedom); test set; MSE per pixel on [0, 1].", "",
             "| latent_dim | seeds | AE MSE | VAE MSE | PCA MSE | VAE active units | best latent - pixels |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['latent_dim']} | {r['n']} | " + " | ".join(cell(r, f"{x}_mse", 5) for x in REPS) +
              f" | {cell(r, 'vae_active_units', 1)} | {cell(r, 'best_minus_pixels', 4)} |" for _, r in df.iterrows()]
    active = "vae_active_mlp" in df and df["vae_active_mlp"].notna().all()  # none in sweeps from before it
    lines += ["", "Probes on each representation, logistic regression / MLP / 5-NN" + (
              "; the MLP on the VAE's active units alone (all of mu where every unit is active)" if active else "") +
              ":", "", "| latent_dim | AE | VAE | PCA |" + (" VAE active units, MLP |" if active else ""),
              "|---|---|---|---|" + ("---|" if active else "")]
    lines += [f"| {r['latent_dim']} | " + " | ".join(" / ".join(cell(r, f"{x}_{c}", 4) for c in ("logreg", "mlp", "knn5"))
                                                    for x in REPS) + " |" +
              (f" {cell(r, 'vae_active_mlp', 4)} |" if active else "") for _, r in df.iterrows()]
    last = df.iloc[-1]
    lines += ["", f"Pixels, the line to reach (the same at every size): logreg {cell(last, 'pixels_logreg', 4)}, "
                  f"MLP {cell(last, 'pixels_mlp', 4)}.", "",
              "Paired differences per size, each run's two numbers from the same seeds:", "",
              "| latent_dim | difference | mean ± 95 % | verdict |", "|---|---|---|---|"]
    lines += [f"| {d} | {name} | {study.pm(j['difference'], j['half_width'], j['n'], 5 if 'MSE' in name else 4)} | "
              f"{study.verdict(j)} |" for (d, name), j in verdicts.items()]
    lines += ["", study.rule(f"the {len(verdicts)} rows of this table", TEST + study.images_rule(verdicts.values()))]
    lines += ["", "Runs: " + "; ".join(f"d = {r['latent_dim']}: {r['experiment']}" for _, r in df.iterrows()) + "."]
    return "\n".join(lines + (["", note] if note else [])) + "\n"


def data(df: pd.DataFrame, dataset: str, overrides: dict, verdicts: dict) -> dict:
    """reports/<out>.json: the sizes' summaries, their runs and each judged row (``study.write``
    adds the per-run rows)."""
    return {"dataset": dataset, "params": overrides, "sizes": df.drop(columns="experiment").to_dict("records"),
            "runs": dict(zip(df["latent_dim"].astype(str), df["experiment"])),
            "differences": [{"latent_dim": d, "name": name, **j} for (d, name), j in verdicts.items()]}


def reuse(root: Path, out: str) -> pd.DataFrame:
    """``--reuse``: reports/<out>.{md,json} rewritten from the JSON alone by the current rule (``study.stored``
    with ``workspace``)."""
    path, md = root / "reports" / f"{out}.json", root / "reports" / f"{out}.md"
    old = study.read_report(path)
    df = pd.DataFrame([{RENAMED.get(k.removesuffix("_ci"), k.removesuffix("_ci")) + ("_ci" if k.endswith("_ci") else ""): v
                        for k, v in r.items()} for r in old["sizes"]])
    df.insert(1, "experiment", [old["runs"][str(d)] for d in df["latent_dim"]])
    kept, code = study.stored(root, out, workspace=True)
    rows = study.fresh(kept)
    # a sweep from before the rows kept their code: the sizes it kept from an earlier report (--keep)
    note = old.get("note") or next((p for p in (md.read_text() if md.exists() else "").split("\n\n")
                                    if p.startswith("Sizes ")), "").strip()
    verdicts = judged(df, rows if len(rows) else None)
    title = f"Latent-size sweep, {old['dataset']}"
    legacy = {k: old[k] for k in ("kept", "note", "rows") if k in old}  # "rows" is rewritten where it has any
    study.write(root, out, markdown(df, title, note, verdicts), {**legacy, **data(df, old["dataset"], old.get(
        "params", {}), verdicts)}, None, kept if len(kept) else None, code)
    return df


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame | None:
    parser = study.arguments(STUDY, __doc__, reuse=True)
    args = parser.parse_args(argv)
    if args.reuse:
        return reuse(root, args.out)
    if (got := study.start(STUDY, args, root)) is None:
        return None
    overrides, entries = got
    kept, code = study.gather(STUDY, entries, overrides, root, args.out)
    rows = study.fresh(kept)
    if rows.empty:
        sys.exit(f"sweep: no finished experiment of {', '.join(args.rev or ['HEAD'])} has metrics at the workspace's "
                 f"code ({len(kept)} stale rows); run `make sweep` first")
    df = study.summarize(rows, ["latent_dim"])
    dataset = {**flat(entries[0]["params"]), **overrides}["data.dataset"]
    title, plots = f"Latent-size sweep, {dataset}", root / "plots" / args.out
    write_csv(plots / "mse.csv", df[["latent_dim", "n", "experiment", *(f"{r}_mse" for r in REPS)]])
    write_csv(plots / "accuracy.csv", df[["latent_dim", "n", "experiment", *(f"{r}_{c}" for r in REPS for c in
                                                                              ("logreg", "mlp")), *PIXELS]])
    verdicts = judged(df, rows)
    study.write(root, args.out, markdown(df, title, "", verdicts), data(df, dataset, overrides, verdicts),
                {"sweep.png": figures.sweep(df, list(REPS))}, kept, code)
    return df


if __name__ == "__main__":
    run(main)
