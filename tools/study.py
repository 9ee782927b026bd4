"""What the studies share (tools/sweep.py, budget.py, bottleneck_control.py): the numbers a
run gives, the runs that differ from the baseline only in the free params and the training
seeds, their summary per group over the seeds, and "mean ± half-width" written once.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tools import noise, read_report
from tools.experiments import SEED_KEYS, flat

# The headline metrics, once, by their flat DVC key: the README's row (make readme) and, for
# those a latent experiment moves, the column of `make exps`.
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
REPORTS = {"fashion_mnist": "sweep", "mnist": "sweep_mnist"}  # each dataset's <out>, as docs/experiments.md runs it
MSE = {"ae": ("metrics/train_ae.json", "ae", "test_mse"), "vae": ("metrics/train_vae.json", "vae", "test_mse"),
       "pca": ("metrics/evaluate.json", "pca", "test_mse")}
PIXELS = {"pixels_logreg": "logreg_test_acc", "pixels_mlp": "test_acc"}
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


def select(entries: list[dict], overrides: dict | None = None, free: tuple[str, ...] = (),
           keep=lambda i, e: True) -> list[dict]:
    """The runs of one study: those whose params are the baseline's (the first entry, with
    ``overrides``) but for the ``free`` params and the training seeds (one value for the
    three), finished, with metrics, and ``keep(i, entry)``; the newest per (free params,
    seed), in that order. Each {"entry", "params" (flat), "seed"}."""
    fixed = _free(entries[0]["params"], overrides or {}, free) if entries else {}
    found: dict[tuple, dict] = {}
    for i, e in enumerate(entries):
        params = flat(e["params"])
        seeds = {params.get(k) for k in SEED_KEYS}
        if e["state"] != "success" or not e["metrics"] or len(seeds) != 1 or any(params.get(k) is None for k in free) \
                or _free(e["params"], {}, free) != fixed or not keep(i, e):
            continue  # unfinished, or another experiment (another dataset, another model)
        key = (*(params[k] for k in free), seeds.pop())
        if key not in found or e["timestamp"] >= found[key]["entry"]["timestamp"]:
            found[key] = {"entry": e, "params": params, "seed": key[-1]}
    return [found[k] for k in sorted(found)]


def run_frame(entries: list[dict], overrides: dict | None = None, knn=lambda rev: {},
              free: tuple[str, ...] = ("latent_dim",)) -> pd.DataFrame:
    """One row per run of ``select`` (with the latents' metrics), its numbers (``run_row``)
    and a column per free param. ``knn(rev)``: a run's reports/downstream.json."""
    runs = select(entries, overrides, free, lambda i, e: "metrics/downstream.json" in e["metrics"])
    if not runs:
        return pd.DataFrame()
    return pd.DataFrame([{**{k: r["params"][k] for k in free}, "seed": r["seed"], "experiment": r["entry"]["name"],
                          "timestamp": r["entry"]["timestamp"], "rev": r["entry"].get("rev", ""),
                          **run_row(r["entry"], knn(r["entry"].get("rev", "")))} for r in runs])


def summarize(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per value of ``by`` the mean of each number over its seeds, ``n`` the seeds and
    ``<number>_ci`` the half-width of its 95 % interval (t with n - 1 dof; 0 for one seed)."""
    numbers = [c for c in df.columns if c not in (*by, "seed", "experiment", "timestamp", "rev")
               and pd.api.types.is_numeric_dtype(df[c])]
    out = []
    for key, group in df.groupby(by):
        row = {**dict(zip(by, key if isinstance(key, tuple) else (key,))),
               **({"experiment": " ".join(group["experiment"])} if "experiment" in group else {}), "n": len(group)}
        for c in numbers:
            s = noise.summary(group[c].tolist())
            row[c], row[f"{c}_ci"] = s["mean"], (s["half_width"] if len(group) > 1 else 0.0)
        out.append(row)
    return pd.DataFrame(out)


def report_row(root: Path, dataset: str, d: int) -> dict | None:
    """The committed sweep's numbers at size ``d`` for ``dataset`` (reports/sweep*.json,
    ``experiment`` its runs), if it has them."""
    path = root / "reports" / f"{REPORTS[dataset]}.json"
    if not path.exists():
        return None
    rep = read_report(path)
    row = next((r for r in rep.get("sizes", []) if r.get("latent_dim") == d), None)
    return row and {**row, "experiment": rep.get("runs", {}).get(str(d), "")}


def pm(mean: float, half: float, n: int, digits: int, sign: str = "") -> str:
    """``mean`` ± ``half`` at ``digits`` decimals, the mean alone for one run, "–" for none;
    ``sign="+"`` writes a change's sign. Every study table's cells."""
    if pd.isna(mean):
        return "–"
    return f"{mean:{sign}.{digits}f}" + (f" ± {half:.{digits}f}" if n > 1 and not pd.isna(half) else "")


def cell(row, column: str, digits: int) -> str:
    """A summary row's ``column`` and its ``<column>_ci`` (``summarize``'s columns)."""
    return pm(row[column], row[f"{column}_ci"], row["n"], digits)
