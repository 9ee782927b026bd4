"""How far a number moves when only the training seeds change, and when a change is beyond that.

Over n runs of one configuration (its params but the training seeds): the mean, the sample sd
and the 95 % interval of the mean (Student's t, n - 1 dof). Two single runs of one configuration
differ by sd sqrt(2) * s; of two configurations, sqrt(s_a^2 + s_b^2) with Welch-Satterthwaite
dof. A table's metrics that move with the seed are judged as one family: Holm's step-down at 5 %
family-wise (Holm, 1979); the floor beside a metric is Holm's first step. A metric the seeds do
not move (sd 0) is judged against a stated numerical tolerance instead.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

ALPHA = 0.05  # the family-wise rate of false flags on a pure reseed


def summary(values: list[float]) -> dict:
    """n, mean, sample sd, the 95 % interval of the mean (t with n - 1 dof) and its half-width."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "half_width": half}


def excludes_zero(s: dict) -> bool:
    """Whether a difference's 95 % interval lies on one side of 0."""
    low, high = s["ci95"]
    return low > 0 or high < 0


def tolerance(key: str, value: float) -> float:
    """The change a metric the seeds do not move may show without meaning anything: 5e-4 for a
    share of test images (five of 10,000: lbfgs's tol, a near-tie), else 1e-4 of its size
    (six significant digits kept; a kernel's summation order moves the last)."""
    share = any(word in key for word in ("acc", "auroc", "share"))
    return 5e-4 if share else 1e-4 * abs(value)


def sd_of_change(a: dict, b: dict | None = None) -> tuple[float, float]:
    """The sd of the change between one run of ``a`` and one of ``b`` (None: of ``a`` again) and
    its dof; each a seed report's entry for the metric ({"sd", "n"})."""
    if b is None:
        return math.sqrt(2) * a["sd"], a["n"] - 1
    va, vb = a["sd"] ** 2, b["sd"] ** 2
    sd = math.sqrt(va + vb)
    if va + vb == 0:
        return 0.0, min(a["n"], b["n"]) - 1
    dof = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1))  # Welch-Satterthwaite
    return sd, dof


def from_interval(mean: float, half_width: float, n: int) -> dict:
    """The ``summary`` of n runs rebuilt from a mean and 95 % half-width (nan sd for one run)."""
    n = int(n)
    sd = float(half_width) * math.sqrt(n) / stats.t.ppf(0.975, n - 1) if n > 1 else float("nan")
    half = float(half_width) if n > 1 else float("nan")
    return {"n": n, "mean": float(mean), "sd": sd, "ci95": [mean - half, mean + half], "half_width": half}


def mean_difference(a: dict, b: dict) -> dict:
    """mean(b) - mean(a) of two configurations' runs (each a ``summary``) and its 95 % interval:
    Welch's; for one run of ``b``, where a further run of ``a`` would fall (a's sd, n_a - 1
    dof); nan half-width when ``a`` has < 2 runs."""
    diff = b["mean"] - a["mean"]
    if a["n"] < 2:
        half = float("nan")
    elif b["n"] < 2:
        half = float(stats.t.ppf(0.975, a["n"] - 1) * a["sd"] * math.sqrt(1 + 1 / a["n"]))
    else:
        sd, dof = sd_of_change({"sd": a["sd"] / math.sqrt(a["n"]), "n": a["n"]},
                               {"sd": b["sd"] / math.sqrt(b["n"]), "n": b["n"]})
        half = float(stats.t.ppf(0.975, dof) * sd) if sd > 0 else 0.0
    return {"n_a": a["n"], "n_b": b["n"], "difference": diff, "ci95": [diff - half, diff + half],
            "half_width": half}


def floor(sd, dof, family: int):
    """The smallest |change| that Holm's first step flags in a family of ``family`` metrics."""
    return stats.t.ppf(1 - ALPHA / (2 * max(family, 1)), dof) * sd  # scalars or arrays


def holm(p_values: dict[str, float], alpha: float = ALPHA) -> set[str]:
    """The keys Holm's step-down procedure rejects at family-wise rate ``alpha``."""
    ordered = sorted(p_values, key=p_values.get)
    rejected = set()
    for i, key in enumerate(ordered):
        if p_values[key] > alpha / (len(ordered) - i):
            break
        rejected.add(key)
    return rejected


def judge(changes: dict[str, float], floors: dict[str, tuple[float, float] | None],
          values: dict[str, float]) -> dict[str, dict]:
    """Per metric of ``changes`` (new - old) its verdict: 'identical', 'within noise' / 'BEYOND
    noise' (Holm over the metrics whose ``floors``, (sd of the change, dof), have sd > 0),
    'within tolerance' / 'BEYOND tolerance' (sd 0; ``values``: the old numbers), or 'no
    floor' (None: no seed report of these configurations knows it)."""
    family = {k: f for k, f in floors.items() if k in changes and f is not None and f[0] > 0}
    keys = list(family)
    sd, dof = (np.array([family[k][i] for k in keys], dtype=np.float64) for i in (0, 1))
    change = np.array([changes[k] for k in keys], dtype=np.float64)
    p = dict(zip(keys, (2 * stats.t.sf(np.abs(change) / sd, dof)).tolist())) if keys else {}
    at_first_step = dict(zip(keys, floor(sd, dof, len(keys)).tolist())) if keys else {}
    flagged = holm(p)
    out = {}
    for key, change in changes.items():
        f = floors.get(key)
        row = {"change": change, "p": p.get(key) if change != 0 else None, "floor": None}
        if change == 0:
            row["verdict"] = "identical"
        elif f is None:
            row["verdict"] = "no floor"
        elif f[0] == 0:
            tol = tolerance(key, values.get(key, 0.0))
            row.update(floor=tol, verdict="BEYOND tolerance" if abs(change) > tol else "within tolerance")
        else:
            row.update(floor=at_first_step[key], verdict="BEYOND noise" if key in flagged else "within noise")
        out[key] = row
    return out


SEED_REPORTS = "reports/seeds*.json"


def configuration(params: dict, seed_key: str) -> dict[str, str]:
    """A run's configuration: its flat params but the training seed, values as text (as
    `dvc params diff` prints lists), so configurations from any source compare equal."""
    return {k: str(v) for k, v in params.items() if k != seed_key and v is not None}


def seed_reports(root: Path = Path(".")) -> list[tuple[Path, dict]]:
    """The committed seed reports that say which configuration they were measured at."""
    from tools.study import read_report

    found = []
    for path in sorted(root.glob(SEED_REPORTS)):
        rep = read_report(path)
        if "config" in rep:
            found.append((path.relative_to(root), rep))
    return found


def report_for(config: dict[str, str], reports: list[tuple[Path, dict]]) -> tuple[Path, dict] | None:
    """The seed report measured at exactly ``config``, if any: a floor is never borrowed
    from another configuration."""
    for path, rep in reports:
        if {k: str(v) for k, v in rep["config"].items()} == config:
            return path, rep
    return None


def floors(keys: list[str], a: dict | None, b: dict | None) -> dict[str, tuple[float, float] | None]:
    """Per metric (sd of the change, dof) between a run of report ``a``'s configuration and one
    of ``b``'s (``b is a``: the same); None where a side lacks a report or the metric."""
    out = {}
    for key in keys:
        ma, mb = (a or {}).get("metrics", {}).get(key), (b or {}).get("metrics", {}).get(key)
        out[key] = None if ma is None or mb is None else sd_of_change(ma) if a is b else sd_of_change(ma, mb)
    return out
