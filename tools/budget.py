"""Is it the latent size or the training budget? `make budget` queues the AE and the VAE
trained for each of BUDGET epochs at each of BUDGET_SIZES; `make budget-report` writes per
size and budget the numbers over the seeds, each longer budget against the shortest and the one
before it (paired by seed; Welch where the sweep keeps no rows; one run: against the shorter
budget's seeds; the table one family, tools/study.py's rule), the
bottleneck control beside them (reports/bottleneck.json), to reports/<out>.{md,json} and
plots/<out>/budget.png. The params' own budget comes from the committed latent-size sweep where
it has the size. ``--reuse``: no runs, the report rewritten from its JSON by the current rule (its
rows flagged against the workspace's code where that keeps them fresh: study.stored).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from stages.core.cli import run
from tools import figures, noise, study
from tools.experiments import SEED, flat
from tools.study import SWEEPS, Study, pm

STUDY = Study("budget", grid={"latent_dim": [2, 8], "epochs": [21, 50]}, seeds=[0],
              tied={"epochs": ("train_ae.epochs", "train_vae.epochs")}, reports=("downstream", "train_ae"),
              numbers=lambda m: {**study.latents(m), "ae_best_epoch": m.get("train_ae:best_epoch", math.nan)})
# The numbers shown, and compared against the shortest budget: (column, digits).
SHOWN = {"best latent - pixels": ("best_minus_pixels", 4), "AE test MSE": ("ae_mse", 5),
         "VAE test MSE": ("vae_mse", 5), "AE MLP probe": ("ae_mlp", 4), "VAE MLP probe": ("vae_mlp", 4)}


def baseline(summary: pd.DataFrame, root: Path, dataset: str, epochs: int) -> tuple[pd.DataFrame, list[int]]:
    """``summary`` with its rows at the params' own ``epochs`` replaced, size by size, by the
    committed sweep's (the same params over its seeds), where it has that size; and those sizes."""
    rows = [{**{c: r.get(c, math.nan) for c in summary.columns}, "latent_dim": d, "epochs": epochs}
            for d in sorted(summary["latent_dim"].unique()) if (r := study.sweep_row(root, dataset, int(d)))]
    sizes = [int(r["latent_dim"]) for r in rows]
    if not rows:
        return summary, sizes
    own = summary[~((summary["epochs"] == epochs) & summary["latent_dim"].isin(sizes))]
    return pd.concat([own, pd.DataFrame(rows, columns=summary.columns)], ignore_index=True) \
        .sort_values(["latent_dim", "epochs"]).reset_index(drop=True), sizes


def changes(summary: pd.DataFrame, rows: pd.DataFrame | None = None) -> list[dict]:
    """Per size each budget against the shortest, and each against the one before it (past the
    first): every SHOWN number's difference of means, its test and its verdict, the rows one
    family. Paired by seed (``noise.paired_test`` of the per-seed differences) where ``rows``
    holds both budgets' runs of two or more shared seeds (the shortest's from the sweep's rows, ``swept_rows``); else ``noise.welch_test`` of the two
    rows' summaries (a sweep that kept no per-seed values)."""
    runs = lambda row, c: noise.from_interval(row[c], row[f"{c}_ci"], row["n"])  # noqa: E731
    seeds = lambda d, e, c: rows[(rows["latent_dim"] == d) & (rows["epochs"] == e)].set_index(SEED)[c].dropna()  # noqa: E731
    tests, references = {}, {}
    for d, group in summary.groupby("latent_dim"):
        budgets = [r for _, r in group.sort_values("epochs").iterrows()]
        pairs = [(budgets[0], r) for r in budgets[1:]] + list(zip(budgets[1:-1], budgets[2:]))
        for base, r in pairs:
            for name, (col, _) in SHOWN.items():
                key = (int(d), int(base["epochs"]), int(r["epochs"]), name)
                a, b = (seeds(d, e, col) if rows is not None else pd.Series(dtype=float)
                        for e in (base["epochs"], r["epochs"]))
                shared = a.index.intersection(b.index)
                tests[key] = noise.paired_test((b[shared] - a[shared]).tolist()) if len(shared) > 1 else \
                    noise.welch_test(runs(base, col), runs(r, col))
                references[key] = base[col]
    return [{"latent_dim": d, "from": a, "to": b, "number": name, **j}
            for (d, a, b, name), j in study.judge(tests, references).items()]


def tests_text(diffs: list[dict]) -> str:
    """How the table's rows were tested, as they were."""
    used = {c["test"] for c in diffs}
    return "; ".join(t for k, t in TESTS.items() if k in used)


TESTS = {"paired t": "paired t on the per-seed differences (the budgets share seeds and pixel MLP; the shortest "
                     "budget's runs are the committed sweep's per-run rows), the seeds' noise alone (two budgets' "
                     "runs keep no joint per-image predictions to add the test images')",
         "Welch": "Welch's t between the two budgets' runs (the shorter budget's rows from a sweep that kept no "
                  "per-seed values)",
         "one run against the seeds": "a single run against the shorter budget's seeds: where a further seed of "
                                      "it would fall (t, n - 1 dof)"}


def with_swept(df: pd.DataFrame, root: Path, dataset: str, own: int,
               now: dict | None) -> tuple[pd.DataFrame | None, list[int]]:
    """The study's fresh rows ``df`` with the committed sweep's fresh per-run rows at its sizes (its
    runs are this study's at the params' own epochs ``own``, the baseline's own run among them),
    so that every budget pairs with the shortest by seed; and those sizes. (None, []) where the
    sweep kept no fresh rows: fresh at the code ``now`` (None: at the code its report was written at)."""
    sweep = study.stored(root, SWEEPS[dataset])[0] if len(df) and dataset in SWEEPS else pd.DataFrame()
    sweep = study.fresh(sweep if now is None else study.flag(sweep, now, root)) if len(sweep) else sweep
    sweep = sweep[sweep["latent_dim"].isin(df["latent_dim"].unique())] if len(sweep) else sweep
    if sweep.empty:
        return None, []
    swept = sorted(sweep["latent_dim"].unique().tolist())
    own_runs = (df["epochs"] == own) & df["latent_dim"].isin(swept)
    return pd.concat([df[~own_runs], sweep.assign(epochs=own).reindex(columns=df.columns)], ignore_index=True), swept


def control(dataset: str, sizes: list[int], root: Path) -> dict[int, dict]:
    """Per size the bottleneck control's MLP probe over its seeds (`make bottleneck`), if any."""
    path = root / "reports" / "bottleneck.json"
    rep = study.read_report(path) if path.exists() else {}
    runs = [r for r in rep.get("rows", []) if r["dataset"] == dataset and not r["stale"]] or \
        rep.get("runs", {}).get(dataset, [])  # "runs": before rows kept their code
    return {d: noise.summary(v) for d in sizes if (v := [r["mlp"] for r in runs if r["latent_dim"] == d])}


def markdown(summary: pd.DataFrame, diffs: list[dict], ctrl: dict[int, dict], title: str, note: str = "") -> str:
    lines = [f"# {title}", "",
             "The AE and the VAE trained for each budget (both the same epochs, the one-cycle schedule "
             "stretched to them); everything else the baseline's. Each number: the mean over the seeds "
             "± the half-width of its 95 % interval (Student's t, n - 1 degrees of freedom); test set; "
             "MSE per pixel on [0, 1]; best latent - pixels with the same classifier on both.", "",
             "| latent_dim | epochs | seeds | " + " | ".join(SHOWN) + " | AE best epoch |",
             "|---|---|---|" + "---|" * (len(SHOWN) + 1)]
    lines += [f"| {r['latent_dim']} | {r['epochs']} | {r['n']} | " + " | ".join(
        study.cell(r, c, k) for c, k in [*SHOWN.values(), ("ae_best_epoch", 1)]) + " |" for _, r in summary.iterrows()]
    lines += ["", "Each longer budget against the shortest and against the one before it, at the same size "
                  "(longer - shorter):", "",
              "| latent_dim | epochs | number | change ± 95 % | test | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['latent_dim']} | {c['from']} → {c['to']} | {c['number']} | "
              f"{pm(c['difference'], c['half_width'], 2, SHOWN[c['number']][1], '+')} | {c['test']} | "
              f"{study.verdict(c)} |" for c in diffs]
    lines += ["", study.rule(f"the {len(diffs)} rows of this table", tests_text(diffs))]
    if ctrl:
        pixels = summary.iloc[0]
        lines += ["", "The bottleneck control (`make bottleneck`: the AE's encoder trained end to end on the labels "
                      "through a d-wide code, 7 epochs), its code's MLP probe: " +
                  "; ".join(f"d = {d}: {pm(s['mean'], s['half_width'], s['n'], 4)} ({s['n']} seeds)"
                            for d, s in ctrl.items()) + f". The pixel MLP: {study.cell(pixels, 'pixels_mlp', 4)}."]
    lines += ["", "Runs: " + "; ".join(f"d = {r['latent_dim']}, {r['epochs']} epochs: {r['experiment']}"
                                      for _, r in summary.iterrows()) + "."]
    return "\n".join(lines + (["", note] if note else [])) + "\n"


def swept_note(epochs: int, swept: list[int], dataset: str) -> str:
    return (f"The {epochs}-epoch rows at d = {', '.join(map(str, swept))} are the committed latent-size sweep's "
            f"(reports/{SWEEPS[dataset]}.json): the same params, its seeds.") if swept else ""


def reuse(root: Path, out: str) -> pd.DataFrame:
    """``--reuse``: reports/<out>.{md,json} rewritten from the JSON alone by the current rule (``study.stored``
    with ``workspace``)."""
    old, (kept, code) = study.read_report(root / "reports" / f"{out}.json"), study.stored(root, out, workspace=True)
    summary, dataset, swept = pd.DataFrame(old["budgets"]), old["dataset"], old.get("from_sweep", [])
    own = old.get("epochs", int(summary["epochs"].min()))
    runs = study.fresh(kept).to_dict("records") if len(kept) else old["runs"]  # "runs": before the rows kept their code
    names = {(r["latent_dim"], r["epochs"]): [] for r in runs}
    for r in runs:
        names[(r["latent_dim"], r["epochs"])].append(r["experiment"])
    summary["experiment"] = [study.sweep_row(root, dataset, int(r["latent_dim"]))["experiment"]
                             if r["latent_dim"] in swept and r["epochs"] == own else " ".join(names[(r["latent_dim"], r["epochs"])])
                             for _, r in summary.iterrows()]
    rows, paired = with_swept(study.fresh(kept), root, dataset, own, None) if len(kept) else (None, [])
    if rows is not None:  # a report that kept its rows: paired by seed, as main wrote it
        summary, swept = study.summarize(rows, ["latent_dim", "epochs"]), paired
    diffs, ctrl = changes(summary, rows), {int(d): s for d, s in old.get("control", {}).items()}
    title = f"Latent size or training budget, {dataset}"
    study.write(root, out, markdown(summary, diffs, ctrl, title, swept_note(own, swept, dataset)),
                {**old, "epochs": own, "changes": diffs}, None, kept if len(kept) else None, code)
    return summary


def main(argv: list[str] | None = None, root: Path = Path(".")) -> pd.DataFrame | None:
    parser = study.arguments(STUDY, __doc__, reuse=True)
    args = parser.parse_args(argv)
    if args.reuse:
        return reuse(root, args.out)
    if (got := study.start(STUDY, args, root)) is None:
        return None
    overrides, entries = got
    kept, code = study.gather(STUDY, entries, overrides, root, args.out)
    df = study.fresh(kept)
    params = {**flat(entries[0]["params"]), **overrides} if entries else {}
    dataset = params.get("data.dataset")
    own = params.get("train_ae.epochs")
    sizes = sorted(df["latent_dim"].unique().tolist()) if len(df) else []
    rows, swept = with_swept(df, root, dataset, own, study.code_state(root))
    if rows is not None:
        summary = study.summarize(rows, ["latent_dim", "epochs"])
    else:
        summary, swept = (df, []) if df.empty else baseline(study.summarize(df, ["latent_dim", "epochs"]), root,
                                                             dataset, own)
    if summary.empty or summary["epochs"].nunique() < 2:
        sys.exit(f"budget: the experiments of {', '.join(args.rev or ['HEAD'])} and the committed sweep have fewer "
                 "than two budgets with metrics; run `make budget` first (and name the commit of earlier runs with --rev)")
    diffs, ctrl = changes(summary, rows), control(dataset, sizes, root)
    note = swept_note(params["train_ae.epochs"], swept, dataset)
    pixels = summary.sort_values("epochs").groupby("latent_dim")["pixels_mlp"].first()  # the shortest budget's seeds
    study.write(root, args.out, markdown(summary, diffs, ctrl, f"Latent size or training budget, {dataset}", note), {
        "dataset": dataset, "params": overrides, "budgets": summary.drop(columns="experiment").to_dict("records"),
        "from_sweep": swept, "changes": diffs, "epochs": params["train_ae.epochs"],
        "control": {str(d): s for d, s in ctrl.items()}},
        {"budget.png": figures.budget(summary, {d: c["mean"] - pixels[d] for d, c in ctrl.items()})}, kept, code)
    return summary


if __name__ == "__main__":
    run(main)
