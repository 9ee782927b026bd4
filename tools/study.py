"""What every study does, once. A study module declares a `Study` (its free params and their
values, the training seeds, or runs by name; the numbers it reads per run and the paired
differences it judges) and keeps what is its own, its tables and figure. This layer queues
it through DVC's queue (one `dvc exp run --queue` per grid point, its seeds one Hydra sweep,
less those its report already keeps fresh), reads back the finished runs that differ from the
baseline only there as one row per run, merged with the rows its report keeps (``gather``: a
row run at other code than the workspace's is stale, in no table), summarizes them per group,
judges a table's differences by the one rule (`judge`: tools/noise.py's ``decide``), writes
"mean ± half-width" (`pm`) and the report's files, its rows among them (``write``).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from stages.core.errors import PipelineError
from stages.core.io import read_json, save_figure, write_json, write_text
from tools import experiments, noise
from tools.experiments import CODE, SEED, flat, run_json

REPO = Path(__file__).resolve().parents[1]

# The headline metrics, by flat DVC key: the README's row label (make readme) and, for those a
# latent experiment moves, the column of `make exps`.
HEADLINE = [
    ("classifier.test_acc", "pixel MLP, test accuracy", "pixel MLP"),
    ("classifier.logreg_test_acc", "pixel logistic regression, test accuracy", None),
    ("downstream.best_latent_test_acc", "best latent classifier (chosen on val), test accuracy", "best latent"),
    ("downstream.best_latent_minus_pixels", "**best latent − the same classifier on pixels**", "- pixels"),
    ("downstream.ae.mlp_test_acc", "MLP on the AE's codes, test accuracy", None),
    ("downstream.vae.mlp_test_acc", "MLP on the VAE's codes (mu), test accuracy", None),
    ("downstream.pca.mlp_test_acc", "MLP on PCA's codes, test accuracy", None),
    ("ae.test_mse", "AE test MSE per pixel, [0, 1] scale", "AE mse"),
    ("vae.test_mse", "VAE test MSE per pixel (decoding mu)", "VAE mse"),
    ("pca.test_mse", "PCA test MSE per pixel", "PCA mse"),
    ("vae.test_nelbo", "VAE negative ELBO, nats per image (the IWAE bound's images and draws)", "VAE nelbo"),
    ("vae.test_iwae_nll", "VAE IWAE bound on −log p(x), nats per image (k = {k}, {images} images)", None),
    ("ood.auroc.vae_nll", "OOD AUROC against {other}: VAE −log p(x)", None),
    ("ood.auroc.ae_mse", "OOD AUROC against {other}: AE MSE", None),
]
# Every paired difference a study may judge: a - b, both from one run (its seeds, its data); b
# None: a is a difference already. Keys: flat metrics, or <report>:<key> of a run's reports/.
PAIRED = {
    "AE - VAE, test MSE": ("ae.test_mse", "vae.test_mse"),
    "AE - PCA, test MSE": ("ae.test_mse", "pca.test_mse"),
    "VAE - PCA, test MSE": ("vae.test_mse", "pca.test_mse"),
    "AE - VAE, MLP probe accuracy": ("downstream.ae.mlp_test_acc", "downstream.vae.mlp_test_acc"),
    "AE - VAE, logreg probe accuracy": ("downstream.ae.logreg_test_acc", "downstream.vae.logreg_test_acc"),
    "AE - PCA, MLP probe accuracy": ("downstream.ae.mlp_test_acc", "downstream.pca.mlp_test_acc"),
    "best latent - pixels, same classifier": ("downstream.best_latent_minus_pixels", None),
    "AE - VAE, arithmetic target share": ("arithmetic.ae.target_share", "arithmetic.vae.target_share"),
    "OOD AUROC: NLL - PNG minus NLL": ("ood.auroc.vae_nll_minus_png", "ood.auroc.vae_nll"),
    "OOD AUROC: AE MSE minus NLL": ("ood.auroc.ae_mse", "ood.auroc.vae_nll"),
    "AE - VAE, 5-NN accuracy": ("downstream:ae.knn.k=5.test_acc", "downstream:vae.knn.k=5.test_acc"),
    "AE - VAE active units, MLP probe accuracy": ("downstream.ae.mlp_test_acc", "downstream.vae_active.mlp_test_acc"),
}
# A PAIRED difference's standard error over the test images in one run, <report>:<key> of the run's
# reports (`test_images` of stages/downstream.py and stages/ood.py); {classifier}: the best latent's.
IMAGES = {"AE - VAE, MLP probe accuracy": "downstream:test_images.differences.ae-vae.mlp.se",
          "AE - VAE, logreg probe accuracy": "downstream:test_images.differences.ae-vae.logreg.se",
          "AE - PCA, MLP probe accuracy": "downstream:test_images.differences.ae-pca.mlp.se",
          "AE - VAE, 5-NN accuracy": "downstream:test_images.differences.ae-vae.k=5.se",
          "AE - VAE active units, MLP probe accuracy": "downstream:test_images.differences.ae-vae_active.mlp.se",
          "best latent - pixels, same classifier": "downstream:test_images.differences.best-pixels.{classifier}.se",
          "OOD AUROC: NLL - PNG minus NLL": "ood:test_images.differences.vae_nll_minus_png-vae_nll.se",
          "OOD AUROC: AE MSE minus NLL": "ood:test_images.differences.ae_mse-vae_nll.se"}
REPS = ("ae", "vae", "pca")
# A latent run's numbers by the short names of the sweep's and the budget's reports.
LATENTS = {**{f"{r}_mse": f"{r}.test_mse" for r in REPS},
           **{f"{r}_{c}": f"downstream.{r}.{c}_test_acc" for r in REPS for c in ("logreg", "mlp")},
           **{f"{r}_knn5": f"downstream:{r}.knn.k=5.test_acc" for r in REPS},
           "vae_active_mlp": "downstream.vae_active.mlp_test_acc",
           "pixels_logreg": "classifier.logreg_test_acc", "pixels_mlp": "classifier.test_acc",
           "best_minus_pixels": "downstream.best_latent_minus_pixels", "vae_active_units": "vae.active_units"}
# A row's fields that are not its numbers: the run (its name, its commit, the baseline it was queued
# from, when), its training seed, its code (``gather``) and per difference its se over the test images.
META = ("experiment", "rev", "baseline", "timestamp", "seed", "code", "stale", "test_images")
SWEEPS = {"fashion_mnist": "sweep", "mnist": "sweep_mnist"}  # each dataset's sweep report, as docs/experiments.md runs it
SAME_OUTPUTS = Path("reports/same_outputs.json")  # tools/same_outputs.py's checks
# The reports a tool writes (reports/<stem>*.json) and the command that writes them again.
WRITERS = {"seeds": "make seeds-report", "sweep": "make sweep-report", "budget": "make budget-report",
           "bottleneck": "make bottleneck", "exercises": "make exercises-report",
           "same_outputs": f"git checkout {SAME_OUTPUTS.as_posix()}"}


def latents(m: dict) -> dict:
    return {k: m.get(key, math.nan) for k, key in LATENTS.items()}


@dataclass
class Study:
    name: str  # reports/<name>.{md,json}, plots/<name>/, `make <name>`
    grid: dict[str, list] = field(default_factory=dict)  # each free param (or `tied` name): its values
    seeds: list[int] | None = None  # values of params.yaml's `seed` per grid point, one sweep; None: the commit's
    runs: dict[str, dict] = field(default_factory=dict)  # or runs by name: {name: {param: value}}
    tied: dict[str, tuple[str, ...]] = field(default_factory=dict)  # one name for params set alike
    reports: tuple[str, ...] = ()  # each run's reports/<name>.json read besides its metrics
    numbers: Callable[[dict], dict] = dict  # a run's numbers from its metrics ({flat key: value})
    paired: tuple[str, ...] = ()  # the PAIRED differences it judges
    run_name: str = ""  # a grid point's sweep's name, DVC's runs <name>-1, -2, ... ("": DVC's own names)

    def free(self) -> tuple[str, ...]:
        return tuple(k for g in self.grid for k in self.tied.get(g, (g,)))


def metrics(entry: dict, reports: tuple[str, ...] = ()) -> dict:
    """A run's metrics by flat DVC key, and each of its ``reports`` as <report>:<key>."""
    m = experiments.headline(entry["metrics"])
    for r in reports:
        m.update({f"{r}:{k}": v for k, v in flat(run_json(entry.get("rev", ""), f"reports/{r}.json")).items()})
    if "downstream:vae_active_units.of" in m and "downstream.vae_active.mlp_test_acc" not in m:
        # a downstream that looked for inactive units and found none: the active units are all of mu
        m["downstream.vae_active.mlp_test_acc"] = m.get("downstream.vae.mlp_test_acc", math.nan)
        m.update({k.replace("ae-vae.", "ae-vae_active."): v for k, v in m.items()
                  if k.startswith("downstream:test_images.differences.ae-vae.mlp.")})
    return m


def differences(m: dict, names: tuple[str, ...]) -> dict:
    """The paired differences ``names`` of one run's metrics ``m`` (nan where it lacks one)."""
    return {n: m.get(PAIRED[n][0], math.nan) - (m.get(PAIRED[n][1], math.nan) if PAIRED[n][1] else 0.0)
            for n in names}


def image_se(m: dict, names: tuple[str, ...]) -> dict:
    """Each difference of ``names`` that has one (IMAGES): its se over the test images in the run
    of metrics ``m``, where the run's reports give it."""
    classifier = str(m.get("downstream:best_latent", "")).rpartition(" ")[2]  # "ae mlp"
    found = {n: m.get(IMAGES[n].format(classifier=classifier)) for n in names if n in IMAGES}
    return {n: se for n, se in found.items() if se is not None}


def arguments(study: Study, doc: str, reuse: bool = False) -> argparse.ArgumentParser:
    """The command line every study shares: queue its runs, or wait for them and report;
    with ``reuse``, also ``--reuse``: rewrite the report from its JSON alone."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--queue", nargs="*", metavar="RUN", help="queue the runs (of named runs: these, default "
                   "all) through DVC's queue and start it; report nothing")
    p.add_argument("--grid", action="append", default=[], metavar="PARAM=V1,V2",
                   help=f"with --queue: a free param's values (default {study.grid})")
    p.add_argument("--seeds", default=None, help=f"with --queue: training seeds, e.g. '0,1,2' (default {study.seeds})")
    p.add_argument("--name", default=study.run_name, help="with --queue: the seed sweep's name (DVC names its "
                   "runs NAME-1, NAME-2, ...; a grid point's values are added to it)")
    p.add_argument("--jobs", type=int, default=1, help="with --queue: workers (each cores / JOBS threads)")
    p.add_argument("-S", "--set", action="append", default=[], metavar="PARAM=VALUE",
                   help="params the runs set besides the free ones and the seeds (make ... SET=...)")
    p.add_argument("--rev", action="append", default=[], help="a baseline commit whose experiments to read "
                   "(repeatable; default HEAD; the first is waited on and names the params the runs share)")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    p.add_argument("--now", action="store_true", help="report the runs finished so far, without waiting")
    p.add_argument("--out", default=study.name, help="reports/<out>.{md,json}, plots/<out>/")
    if reuse:
        p.add_argument("--reuse", action="store_true", help="no runs: rewrite reports/<out>.{md,json} from the "
                       "JSON by the current rule")
    return p


def start(study: Study, args: argparse.Namespace, root: Path = Path(".")) -> tuple[dict, list[dict]] | None:
    """``--queue``: queue the study's runs and start the queue (None), less the seeds of a grid
    point whose fresh row reports/<out>.json already keeps (said, not queued): a study spans
    several sittings. Otherwise the params the runs set (``--set``) and the runs of ``--rev``,
    once the first's queue is done."""
    sets = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.queue is None:
        revs = args.rev or ["HEAD"]
        entries = experiments.runs(experiments.dvc_exp_show(revs[0])) if args.now else \
            experiments.wait(revs[0], args.poll, study.name)
        return sets, entries + [e for rev in revs[1:] for e in experiments.runs(experiments.dvc_exp_show(rev))]
    grid = {**study.grid, **{k: v.split(",") for k, v in (g.split("=", 1) for g in args.grid)}}
    seeds = study.seeds if args.seeds is None else [int(s) for s in args.seeds.replace(",", " ").split()]
    kept = fresh(flag(stored(root, args.out, sets)[0], code_state(root), root))
    done = {tuple(map(str, k)) for k in kept[[*grid, SEED]].itertuples(index=False)} \
        if len(kept) and {*grid, SEED} <= set(kept.columns) else set()
    runs = []
    for values in itertools.product(*grid.values()) if grid or seeds is not None else []:  # none: named runs only
        point = {k: v for g, v in zip(grid, values) for k in study.tied.get(g, (g,))}
        name = "-".join(map(str, (args.name, *values))) if args.name else None
        todo = seeds and [s for s in seeds if (*map(str, values), str(s)) not in done]
        if seeds and todo != seeds:
            print(f"{study.name}: {dict(zip(grid, values))} seeds {[s for s in seeds if s not in todo]}: fresh in "
                  f"reports/{args.out}.json, not queued")
        if seeds is None or todo:
            runs.append((name, {**point, **sets, **({SEED: sweep(todo)} if seeds is not None else {})}))
    runs += [(n, {**p, **sets}) for n, p in study.runs.items() if not args.queue or n in args.queue]
    experiments.queue(runs, args.jobs)
    return None


def sweep(seeds: list[int]) -> int | str:
    """The seeds as one `-S seed=...` value: a Hydra sweep that `dvc exp run --queue` expands
    into one run per seed (``range(1,5)`` for consecutive ones, ``0,2,5`` otherwise), or the
    one seed."""
    if len(seeds) == 1:
        return seeds[0]
    return f"range({seeds[0]},{seeds[-1] + 1})" if seeds == list(range(seeds[0], seeds[-1] + 1)) \
        else ",".join(map(str, seeds))


def select(entries: list[dict], overrides: dict | None = None, free: tuple[str, ...] = ()) -> list[dict]:
    """The runs of one study: finished, with metrics, whose params are the baseline's (the first
    entry, with ``overrides``) but for ``free`` and the training ``seed``; not a rerun of the
    baseline's own params; the newest per (free params, seed), in that order."""
    strip = lambda p: {k: v for k, v in p.items() if k not in free and k != SEED}  # noqa: E731
    base = flat(entries[0]["params"]) if entries else {}
    found: dict[tuple, dict] = {}
    for i, e in enumerate(entries):
        params = flat(e["params"])
        if e["state"] != "success" or not e["metrics"] or any(params.get(k) is None for k in free) \
                or strip(params) != strip({**base, **(overrides or {})}) or (i and params == base):
            continue  # unfinished, another experiment (another dataset, model), or the baseline again
        key = (*(params[k] for k in free), params.get(SEED))
        if key not in found or e["timestamp"] >= found[key]["entry"]["timestamp"]:
            found[key] = {"entry": e, "params": params, "seed": key[-1]}
    return [found[k] for k in sorted(found)]


def frame(study: Study, entries: list[dict], overrides: dict | None = None) -> pd.DataFrame:
    """One row per run of the study (``select``): META, each free param (a `tied` group as one
    column, its runs that set it unalike dropped), its numbers and its paired differences."""
    reports = tuple(dict.fromkeys([*study.reports, *(IMAGES[n].partition(":")[0] for n in study.paired if n in IMAGES)]))
    rows = []
    for r in select(entries, overrides, study.free()):
        e, p = r["entry"], r["params"]
        free = {g: {p[k] for k in study.tied.get(g, (g,))} for g in study.grid}
        if all(len(v) == 1 for v in free.values()):
            m = metrics(e, reports)
            own = {k: v for k, v in m.items() if k.partition(":")[0] in study.reports or ":" not in k}
            rows.append({"experiment": e["name"], "rev": e.get("rev", ""), "baseline": e.get("baseline", ""),
                         "timestamp": e["timestamp"], "seed": r["seed"], **{g: v.pop() for g, v in free.items()},
                         **study.numbers(own), **differences(m, study.paired), "code": e.get("code", {}),
                         "test_images": image_se(m, study.paired)})
    return pd.DataFrame(rows)


def code_of(stages: dict) -> dict[str, str]:
    """A dvc.lock's code: the md5 of each of its stages' deps under CODE, as `dvc exp show` gives a
    run's (`experiments.runs`: where two stages list a path, the last one's)."""
    return {d["path"]: d.get("md5") for s in stages.values() for d in s.get("deps") or [] if d["path"].startswith(CODE)}


def mixed_code(stages: dict) -> list[str]:
    """The CODE paths that two stages of one dvc.lock list at different md5s: a partial rerun."""
    seen: dict[str, set] = {}
    for s in stages.values():
        for d in s.get("deps") or []:
            if d["path"].startswith(CODE):
                seen.setdefault(d["path"], set()).add(d.get("md5"))
    return sorted(p for p, md5s in seen.items() if len(md5s) > 1)


def code_state(root: Path) -> dict[str, str]:
    """The workspace's code (``code_of`` its dvc.lock)."""
    path = root / "dvc.lock"
    return code_of((yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.exists() else {})


def digest(code: dict) -> str:
    """A code state's name in a report: rows share a few states, so each row names its state and
    the report keeps each state's {path: md5} once (``keep``), which says which files differ."""
    return hashlib.md5(json.dumps(code, sort_keys=True).encode()).hexdigest()[:12]


def same_outputs(root: Path) -> list[dict]:
    """tools/same_outputs.py's checks: each a pair of states of the stages' code (``from``, ``to``:
    their ``digest``) whose runs gave byte-identical outputs, every stage's, at its ``params``, and
    ``why`` the change holds at every other params."""
    path = root / SAME_OUTPUTS
    checks = read_report(path).get("checks", []) if path.exists() else []
    if not all(isinstance(c, dict) and {"from", "to"} <= set(c) for c in checks):
        raise PipelineError(f"{path}: a check lacks its from/to code states; `git checkout {SAME_OUTPUTS}`, "
                            "or write it again with `make same-outputs`")
    return checks


def _part(code: dict, inside: bool) -> dict:
    return {p: md5 for p, md5 in code.items() if p.startswith(CODE) == inside}


def carried(code: dict, now: dict, checks: list[dict]) -> list[dict] | None:
    """The checks that carry a run at ``code`` to ``now`` (None: none do): the same code outside
    CODE, and a chain of ``checks`` from its stages' code to now's, each step shown to change no
    output."""
    if _part(code, False) != _part(now, False):
        return None
    reach, target, used = {digest(_part(code, True))}, digest(_part(now, True)), []
    while target not in reach and (step := [c for c in checks if c["from"] in reach and c["to"] not in reach]):
        reach |= {c["to"] for c in step}
        used += step
    return used if target in reach else None


def flag(rows: pd.DataFrame, now: dict | None, root: Path) -> pd.DataFrame:
    """``rows`` with ``stale``: the paths of each row's code whose md5 differs from ``now``'s
    (empty: fresh; a row without a code state: stale as a whole), none where a chain of
    ``root``'s checks (``same_outputs``) carries the row's code to ``now``. ``now`` None: a
    report written before rows kept their code, nothing flagged."""
    checks = same_outputs(root) if now is not None else []

    def stale(code) -> list[str]:
        if now is None:
            return []
        if not isinstance(code, dict):
            return ["(no code state)"]
        differ = sorted(p for p, md5 in code.items() if now.get(p) != md5)
        return [] if differ and carried(code, now, checks) is not None else differ
    return rows.assign(stale=[stale(c) for c in rows["code"]]) if len(rows) else rows


def fresh(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows run at the workspace's code (``flag``): the only ones a table, interval or verdict uses."""
    return rows[[not s for s in rows["stale"]]].reset_index(drop=True) if len(rows) else rows


def stored(root: Path, out: str, overrides: dict | None = None, workspace: bool = False
           ) -> tuple[pd.DataFrame, dict | None]:
    """The rows reports/<out>.json keeps, each with its code ({path: md5}), flagged (``flag``)
    against the code the report was written at, which is returned beside (None: before rows kept
    it); no rows where it was run at other ``overrides``. With ``workspace`` (a report rewritten by
    the current rule: ``--reuse``), against the workspace's dvc.lock instead where it keeps every
    fresh row fresh (the same code, or a check carries them), said where it would not."""
    path = root / "reports" / f"{out}.json"
    rep = read_report(path) if path.exists() else {}
    if overrides is not None and rep.get("rows") and rep.get("params", {}) != overrides:
        print(f"{out}: reports/{out}.json was run with {rep.get('params')}, not {overrides}: its rows are left out")
        return pd.DataFrame(), None
    states = rep.get("code_states", {})
    rows = [{**r, "code": states.get(r.get("code")), "test_images": r.get("test_images") or {}}
            for r in rep.get("rows", [])]
    now = states.get(rep.get("code_now"))
    return rebase(pd.DataFrame(rows), now, code_state(root) if workspace else None, root, out)


def rebase(rows: pd.DataFrame, now: dict | None, here: dict | None, root: Path, out: str
           ) -> tuple[pd.DataFrame, dict | None]:
    """A report's ``rows`` flagged against ``here`` (the workspace's code; None or empty: none) where
    that leaves every row fresh at ``now`` (the code the report was written at) fresh, the same code
    or carried by a check; else against ``now``, said in one line. Returns the code chosen beside."""
    own = flag(rows, now, root)
    if now is None or not here or here == now or not len(rows):
        return own, now
    moved = flag(rows, here, root)
    if not any(s and not o for o, s in zip(own["stale"], moved["stale"])):
        return moved, here
    differ = sorted(p for p in set(here) | set(now) if here.get(p) != now.get(p))
    print(f"{out}: the workspace's code ({', '.join(differ)}) differs from the code its fresh rows ran at, and "
          "no check carries them (`make same-outputs`): its rows stay flagged against the code it was written at")
    return own, now


def gather(study: Study, entries: list[dict], overrides: dict, root: Path, out: str) -> tuple[pd.DataFrame, dict]:
    """Every row of the study, the finished runs (``frame``) and those reports/<out>.json keeps, one
    per (free params, seed): a fresh row before a stale one, then the newer run; each flagged
    against the workspace's code (``flag``), which is returned beside."""
    now = code_state(root)
    parts = [d for d in (stored(root, out, overrides)[0], frame(study, entries, overrides)) if len(d)]
    if not parts:
        return pd.DataFrame(), now
    rows = flag(pd.concat(parts, ignore_index=True), now, root)
    key = [*study.grid, SEED]
    order = rows.assign(fresh=[not s for s in rows["stale"]]).sort_values(["fresh", "timestamp"], kind="stable")
    return order.drop_duplicates(key, keep="last").drop(columns="fresh").sort_values(key).reset_index(drop=True), now


def keep(rows: pd.DataFrame, now: dict | None) -> dict:
    """``gather``'s rows as a report keeps them: row by row, each naming its code state
    (``digest``), each state's {path: md5} once, and the workspace's state they were flagged against."""
    states = {digest(c): c for c in [*rows["code"], now] if isinstance(c, dict)}
    return {"rows": [{**r, "code": digest(r["code"]) if isinstance(r["code"], dict) else None}
                     for r in rows.to_dict("records")],
            "code_states": states, "code_now": None if now is None else digest(now)}


def stale_note(rows: pd.DataFrame, out: str) -> str:
    """The markdown's line on the stale rows: how many, which, what differs, how to rerun them."""
    old = rows[[bool(s) for s in rows["stale"]]]
    if old.empty:
        return ""
    paths = sorted({p for s in old["stale"] for p in s})
    return (f"Stale: {len(old)} of {len(rows)} runs ran at other code than the workspace's dvc.lock "
            f"({', '.join(paths)}): " + "; ".join(f"{r.experiment} (seed {r.seed})" for r in old.itertuples()) +
            f". No table or verdict here uses them; reports/{out}.json keeps them, and the study's `--queue` "
            "(with the same params) reruns them, skipping the fresh ones.")


def carried_note(rows: pd.DataFrame, now: dict | None, root: Path) -> str:
    """The markdown's line on the fresh rows run at other code, which ``root``'s checks carry to
    ``now``: the files that differ, the params each check ran at, and why it holds at the others."""
    checks = same_outputs(root) if now else []
    moved = [(r, carried(r.code, now, checks) or []) for r in rows.itertuples()
             if not r.stale and isinstance(r.code, dict) and now and any(now.get(p) != m for p, m in r.code.items())]
    if not moved:
        return ""
    paths = sorted({p for r, _ in moved for p, md5 in r.code.items() if now.get(p) != md5})
    used = {json.dumps(c.get("params"), sort_keys=True): c for _, cs in moved for c in cs}.values()
    ran = " and at ".join(", ".join(f"{k} {v}" for k, v in (c.get("params") or {}).items()) for c in used)
    why = "; ".join(dict.fromkeys(c["why"] for c in used if c.get("why"))) or "none given"
    return (f"Carried: {len(moved)} of {len(rows)} runs ran at earlier code ({', '.join(paths)}). Runs at it and at "
            f"today's code gave byte-identical outputs, every stage's, at {ran} ({SAME_OUTPUTS}); why at every "
            f"other params: {why}. They count as run at today's.")


def named(study: Study, entries: list[dict]) -> dict[str, dict]:
    """The newest finished run of each of the study's named runs: the baseline's params with
    that run's, nothing else."""
    done = [e for e in entries[1:] if e["state"] == "success"]
    base = flat(entries[0]["params"])
    found = {n: sorted((e for e in done if flat(e["params"]) == {**base, **p}), key=lambda e: e.get("timestamp", ""))
             for n, p in study.runs.items()}
    return {n: runs[-1] for n, runs in found.items() if runs}


def summarize(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per value of ``by`` each number's mean over its seeds, ``n`` the seeds and ``<number>_ci``
    the half-width of its 95 % interval (t with n - 1 dof, tools/noise.py; 0 for one seed)."""
    numbers = [c for c in df.columns if c not in (*by, *META) and pd.api.types.is_numeric_dtype(df[c])]
    out = []
    for key, group in df.groupby(by):
        row = {**dict(zip(by, key if isinstance(key, tuple) else (key,))),
               **({"experiment": " ".join(group["experiment"])} if "experiment" in group else {}), "n": len(group)}
        for c in numbers:
            s = noise.summary(group[c].tolist())
            row[c], row[f"{c}_ci"] = s["mean"], (s["half_width"] if len(group) > 1 else 0.0)
        out.append(row)
    return pd.DataFrame(out)


def judge(tests: dict, references: dict | None = None) -> dict[str, dict]:
    """THE rule by which every study judges its table (tools/noise.py's ``decide``): ``tests``
    the table's rows ({row: noise.t_test}), one family; ``references`` per row the number its
    difference is measured against (a test MSE's margin is a share of it); each row's margin is
    the one its name calls for (``noise.margin``: a row named by its PAIRED name or metric)."""
    names = {k: k[-1] if isinstance(k, tuple) else k for k in tests}
    return noise.decide(tests, {k: noise.margin(names[k], (references or {}).get(k)) for k in tests})


def p_text(p: float) -> str:
    return "–" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.2g}"


def verdict(j: dict) -> str:
    """A judged row's verdict, with the Holm-adjusted p of the test that decided it."""
    m = "" if j["margin"] is None else f"±{j['margin']:.2g}"
    if j["verdict"] == "not judged":
        return "not judged: one run"
    if j["verdict"] == "beyond":
        return f"beyond (p {p_text(j['p_holm'])})"
    if j["verdict"] == "level":
        return f"level within {m} (TOST p {p_text(j['p_tost_holm'])})"
    if j["verdict"] == "beyond, within the margin":
        return f"beyond (p {p_text(j['p_holm'])}), yet within {m} (TOST p {p_text(j['p_tost_holm'])})"
    return f"undecided (p {p_text(j['p_holm'])}" + (f"; within {m}: TOST p {p_text(j['p_tost_holm'])})" if m else
                                                     "; no margin)")


def rule(family: str, tests: str) -> str:
    """The sentence under a judged table: its test, its family, its margins."""
    return (f"Verdicts: {tests}; p adjusted by Holm over {family} (5 % family-wise). \"Level\" only where "
            f"two one-sided tests (TOST) put the difference within ± its margin, Holm over the same rows: "
            f"{noise.MARGIN_SHARE:g} for a share of test images (accuracy), {noise.MARGIN_MSE_RELATIVE * 100:g} % of "
            "the reference's for a test MSE (tools/noise.py says why); \"undecided\": neither test rejects.")


def images_rule(tests) -> str:
    """The words the rule's sentence adds where a judged row's test took in the test images."""
    if not any("test images" in t.get("test", "") for t in tests):
        return ""
    return "; where every run gives its se over the test images (\"+ test images\"), the interval and the test " \
        "add it to the seeds' (tools/noise.py, with_test_images)"


def decimals(half_width: float, value: float) -> int:
    """Two significant digits of the half-width; four of the value when it is 0."""
    scale = half_width if half_width > 0 else abs(value)
    return max(0, (1 if half_width > 0 else 3) - math.floor(math.log10(scale))) if scale > 0 else 0


def pm(mean: float, half: float, n: int = 2, digits: int | None = None, sign: str = "") -> str:
    """``mean`` ± ``half`` at ``digits`` decimals (None: two significant digits of ``half``, and
    "± 0" for a number the seeds do not move), the mean alone for one run, "–" for none."""
    if pd.isna(mean):
        return "–"
    if digits is None:
        d = decimals(half, mean)
        return f"{mean:{sign}.{d}f} ± " + (f"{half:.{d}f}" if half > 0 else "0")
    return f"{mean:{sign}.{digits}f}" + (f" ± {half:.{digits}f}" if n > 1 and not pd.isna(half) else "")


def cell(row, column: str, digits: int) -> str:
    """A ``summarize`` row's ``column`` ± its ``<column>_ci``."""
    return pm(row[column], row[f"{column}_ci"], row["n"], digits)


def num(x: float) -> str:
    """One number at the digits its size needs."""
    return "-" if x is None else f"{x:.5f}" if abs(x) < 0.1 else f"{x:.4f}" if abs(x) < 10 else f"{x:.2f}"


def read_report(path: Path) -> dict:
    """A tool's JSON report; a damaged or missing one is one line naming the make target that
    writes it again (no `dvc repro` rebuilds it)."""
    target = next((t for stem, t in WRITERS.items() if Path(path).name.startswith(stem)), None)
    return read_json(path, f"write it again with `{target}`" if target else None)


SEED_REPORTS = "reports/seeds*.json"


def seed_reports(root: Path = Path(".")) -> list[tuple[Path, dict]]:
    """The committed seed reports that say which configuration they were measured at."""
    found = []
    for path in sorted(root.glob(SEED_REPORTS)):
        rep = read_report(path)
        if "config" in rep:
            found.append((path.relative_to(root), rep))
    return found


def write(root: Path, out: str, text: str, data: dict | None = None, figures: dict | None = None,
          rows: pd.DataFrame | None = None, code: dict | None = None) -> None:
    """reports/<out>.md (and printed), reports/<out>.json, plots/<out>/<name> for each figure;
    with ``rows`` (``gather``'s, flagged against ``code``), the JSON keeps them row by row
    (``keep``) and the markdown ends with which are stale."""
    if rows is not None:
        note = "\n\n".join(n for n in (carried_note(rows, code, root), stale_note(rows, out)) if n)
        text, data = text + (f"\n{note}\n" if note else ""), {**(data or {}), **keep(rows, code)}
    write_text(root / "reports" / f"{out}.md", text)
    if data is not None:
        write_json(root / "reports" / f"{out}.json", data)
    for name, fig in (figures or {}).items():
        save_figure(root / "plots" / out / name, fig)
    print(text)


def sweep_runs(root: Path, dataset: str, d: int) -> dict[int, dict]:
    """The committed sweep's fresh per-run rows at size ``d`` for ``dataset``, by training seed
    (fresh by the code state the sweep report was written at); none where it keeps no rows."""
    rows = fresh(stored(root, SWEEPS[dataset])[0])
    return {} if rows.empty else {int(r["seed"]): r for r in rows.to_dict("records") if r["latent_dim"] == d}


def sweep_row(root: Path, dataset: str, d: int) -> dict | None:
    """The committed sweep's numbers at size ``d`` for ``dataset`` (``experiment``: its runs), if any."""
    path = root / "reports" / f"{SWEEPS[dataset]}.json"
    rep = read_report(path) if path.exists() else {}
    row = next((r for r in rep.get("sizes", []) if r.get("latent_dim") == d), None)
    return row and {**row, "experiment": rep.get("runs", {}).get(str(d), "")}

