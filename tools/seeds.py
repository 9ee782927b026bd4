"""The noise floor: `make seeds` queues HEAD's params with params.yaml's `seed` set to each
of SEEDS (HEAD's own run is seed 0) as one DVC sweep, `dvc exp run --queue -S
'seed=range(1,5)'`, named [TAG]seeds-<machine> (DVC names its runs <name>-1, -2, ...);
`make seeds-report` writes per metric its mean, sd and 95 % interval over the runs, per
paired difference the same and its verdict (tools/noise.py): reports/<out>.{json,md} (the
floor `make compare` reads) and plots/<out>/errors.png. A run is named by its experiment
name and its seed (read from its params); runs pushed from several machines count alike.
"""
from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pandas as pd
import yaml

from stages.core.cli import run
from tools import figures, noise, study
from tools.experiments import SEED, flat
from tools.study import META, PAIRED, Study, num

STUDY = Study("seeds", seeds=[1, 2, 3, 4], run_name="seeds-" + socket.gethostname(),
              paired=tuple(n for n in PAIRED if not n.startswith("AE - VAE, 5-NN")))


def machine(experiment: str, baseline: str) -> str | None:
    """The machine in a seed run's name: [TAG]seeds-<machine>-<i> as `make seeds` names its sweep's
    runs, or [TAG]seed<s>-<machine> as one is named by hand; None for another name (DVC's own)."""
    if experiment == baseline:
        return "(commit's own run)"
    made = re.search(r"(?:^|-)(?:seeds-(.+)-\d+|seeds-(.+)|seed\d+-(.+))$", experiment)
    return next(filter(None, made.groups())) if made else None


def seed_runs(rows: pd.DataFrame) -> list[dict]:
    """The study's rows (``study.gather``'s fresh ones: runs that differ from the baseline only in
    the seed), each {experiment (its name), seed (its params'), machine (:func:`machine`), metrics,
    test_images (per difference its se over the test images)}."""
    return [{"experiment": r["experiment"], "seed": r["seed"], "machine": machine(r["experiment"], r["baseline"]),
             "metrics": {k: v for k, v in r.items() if k not in META and k not in PAIRED and not pd.isna(v)},
             "test_images": r["test_images"]} for r in rows.to_dict("records")]


def report(rows: list[dict]) -> dict:
    keys = sorted(set.intersection(*(set(r["metrics"]) for r in rows)))
    metrics = {k: {**noise.summary([r["metrics"][k] for r in rows]), "values": [r["metrics"][k] for r in rows]}
               for k in keys}
    differences = {}
    for name in STUDY.paired:
        values = [study.differences(r["metrics"], (name,))[name] for r in rows]
        if not any(pd.isna(values)):
            differences[name] = {**noise.summary(values), "values": values}
    # The differences are one family: tools/study.py's rule (paired t, with the test images' se
    # where every run gives it; Holm, TOST).
    judged = study.judge({k: noise.with_test_images(noise.paired_test(d["values"]), [
        r.get("test_images", {}).get(k) for r in rows]) for k, d in differences.items()},
        {k: metrics.get(PAIRED[k][1] or "", {}).get("mean") for k in differences})
    for k, d in differences.items():
        d.update({f: judged[k][f] for f in ("p", "p_holm", "margin", "p_tost", "p_tost_holm", "verdict")})
        if judged[k]["test"] != "paired t":  # the test images' se joined the seeds': the interval too
            half = judged[k]["half_width"]
            d.update(test=judged[k]["test"], se=judged[k]["se"], half_width=half,
                     ci95=[d["mean"] - half, d["mean"] + half])
    return {"runs": [{k: r[k] for k in ("experiment", "seed", "machine")} for r in rows],
            "metrics": metrics, "differences": differences}


def family_floors(rep: dict) -> dict[str, float | None]:
    """Per metric the floor of one run against another of this configuration (Holm's first step
    over the metrics that move with the seed), or None (the tolerance) for one they do not move."""
    moving = [k for k, s in rep["metrics"].items() if s["sd"] > 0]
    return {k: float(noise.floor(*noise.sd_of_change(s), len(moving))) if s["sd"] > 0 else None
            for k, s in rep["metrics"].items()}


def markdown(rep: dict, title: str) -> str:
    made = ", ".join(f"{r['experiment']} (seed {r['seed']}" + (f", {r['machine']})" if r["machine"] else ")")
                     for r in rep["runs"])
    n, floors = len(rep["runs"]), family_floors(rep)
    interval = lambda s: f"{num(s['mean'])} | {num(s['sd'])} | [{num(s['ci95'][0])}, {num(s['ci95'][1])}]"  # noqa: E731
    lines = [f"{title}: {n} runs that differ only in the training seeds: {made}.", "",
             f"Floor: the smallest change between two single runs of these params that `make compare` flags, "
             f"t with {n - 1} degrees of freedom, Holm over the {sum(f is not None for f in floors.values())} "
             f"metrics that move with the seed (5 % family-wise; tools/noise.py). A metric the seeds do not move is "
             f"judged against a tolerance instead: 5e-4 for a share of test images, 1e-4 of its size otherwise.", "",
             "| metric | mean | sd | 95 % interval of the mean | floor for one run vs another |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {interval(s)} | " + (num(floors[k]) if floors[k] is not None else
                                           f"tolerance {noise.tolerance(k, s['mean']):.2g}") + " |"
              for k, s in rep["metrics"].items()]
    lines += ["", "Paired differences (each run's two numbers share its seeds):", "",
              "| difference | mean | sd | 95 % interval | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {interval(s)} | {study.verdict(s)} |" for k, s in rep["differences"].items()]
    lines += ["", study.rule(f"the {len(rep['differences'])} differences of this table", "paired t on the per-seed "
                             "differences (n - 1 dof)" + study.images_rule(rep["differences"].values()))]
    return "\n".join(lines) + "\n"


def figure(rep: dict, title: str):
    m = rep["metrics"]
    frame = lambda keys: pd.DataFrame({c: [m[k][c] for k in keys.values() if k in m] for c in ("mean", "half_width")},  # noqa: E731
                                      index=[n for n, k in keys.items() if k in m])
    probes = {f"{r} {c}": f"downstream.{r}.{c}_test_acc" for r in study.REPS for c in ("logreg", "mlp")}
    probes.update({"pixels logreg": "classifier.logreg_test_acc", "pixels mlp": "classifier.test_acc"})
    return figures.error_bars({"test accuracy": frame(probes), "test MSE per pixel, [0, 1]": frame(
        {r.upper(): f"{r}.test_mse" for r in study.REPS})}, f"{title}: mean and 95 % interval over {len(rep['runs'])} seeds")


def main(argv: list[str] | None = None, root: Path = Path(".")) -> dict | None:
    parser = study.arguments(STUDY, __doc__)
    parser.add_argument("--refresh", action="store_true",
                        help="no runs: rewrite reports/<out>.* from the values it keeps, by the current rules")
    parser.add_argument("--drop", action="append", default=[], metavar="METRIC",
                        help="with --refresh: a metric whose definition has changed since the runs")
    args = parser.parse_args(argv)
    if args.refresh:
        old = study.read_report(root / "reports" / f"{args.out}.json")
        kept, code = study.stored(root, args.out, workspace=True)
        runs = seed_runs(study.fresh(kept)) if len(kept) else [  # a report from before its rows: its values
            {**r, "metrics": {k: m["values"][i] for k, m in old["metrics"].items()}} for i, r in enumerate(old["runs"])]
        runs = [{**r, "metrics": {k: v for k, v in r["metrics"].items() if k not in args.drop}} for r in runs]
        overrides = old.get("params", {})
        config = old.get("config") or {k: v for k, v in {**flat(yaml.safe_load((root / "params.yaml").read_text())),
                                                         **overrides}.items() if k != SEED}
    else:
        if (got := study.start(STUDY, args, root)) is None:
            return None
        overrides, entries = got
        kept, code = study.gather(STUDY, entries, overrides, root, args.out)
        runs = seed_runs(study.fresh(kept))
        if len(runs) < 2:
            sys.exit(f"seeds: {len(runs)} fresh run(s) of {', '.join(args.rev or ['HEAD'])} differ only in their seeds "
                     f"({len(kept) - len(runs)} stale); a noise floor needs 2 or more: run `make seeds` first")
        config = {k: v for k, v in {**flat(entries[0]["params"]), **overrides}.items() if k != SEED}
    rep = {**report(runs), "params": overrides, "config": config}  # config: what tools/compare.py matches
    title = f"{config['data.dataset']}, latent_dim={config['latent_dim']}"
    study.write(root, args.out, markdown(rep, title), rep, {"errors.png": figure(rep, title)},
                kept if len(kept) else None, code)
    return rep


if __name__ == "__main__":
    run(main)
