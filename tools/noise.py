"""How far a number moves when only the training seeds change, and when a change is beyond that.

Over n runs of one configuration (its params but the training seeds): the mean, the sample sd
and the 95 % interval of the mean (Student's t, n - 1 dof). Two single runs of one configuration
differ by sd sqrt(2) * s; of two configurations, sqrt(s_a^2 + s_b^2) with Welch-Satterthwaite
dof. A table's metrics that move with the seed are judged as one family: Holm's step-down at 5 %
family-wise (Holm, 1979); the floor beside a metric is Holm's first step. A metric the seeds do
not move (sd 0) is judged against a stated numerical tolerance instead.

THE rule of every study table (`decide`): a difference is tested paired by seed where its runs
share seeds (a one-sample t on the per-seed differences), else by Welch's t of the two groups;
Holm over the rows the table presents; and each row with a margin (`margin`) also by two
one-sided tests (TOST, Schuirmann 1987) that it lies within ± the margin, Holm over the same
rows. Only such a TOST calls two numbers level. Where each run says how far its difference would
move were only the test images drawn again, that se joins the seeds' (`with_test_images`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

ALPHA = 0.05  # the family-wise rate of false flags on a pure reseed
# The equivalence margins: how close two numbers must be shown to be before a page calls them
# level. A share of test images (accuracy, AUROC, a target share): one point, 100 of the 10,000
# test images; below every gap of the latents to the pixels on Fashion-MNIST (the smallest, 0.015
# at d = 32, reports/sweep.json), two to six times a probe's
# sd over the seeds at d = 2 (0.0017 to 0.0051, reports/seeds.json). A test MSE: 5 % of the
# reference's (relative: the MSE falls fourfold from d = 2 to 32); below the AE's 9 % lead over
# the VAE at d = 8 (reports/sweep.json), several times its sd over the seeds (0.4 to 0.9 %).
# Other numbers (nats, active units) have no margin: never called level.
MARGIN_SHARE = 0.01
MARGIN_MSE_RELATIVE = 0.05


def summary(values: list[float]) -> dict:
    """n, mean, sample sd, the 95 % interval of the mean (t with n - 1 dof) and its half-width."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "half_width": half}


def margin(name: str, reference: float | None = None) -> float | None:
    """The equivalence margin of a difference named ``name`` (a metric or a PAIRED name):
    MARGIN_SHARE for a share of test images, MARGIN_MSE_RELATIVE of ``reference`` (the MSE it
    is compared with) for a test MSE, None for anything else."""
    low = name.lower()
    if any(w in low for w in ("acc", "auroc", "share", "probe", "pixels", "-nn", "end to end")):
        return MARGIN_SHARE
    if "mse" in low and reference is not None and not math.isnan(reference):
        return MARGIN_MSE_RELATIVE * abs(reference)
    return None


def t_test(difference: float, se: float, dof: float, n: int, test: str) -> dict:
    """A difference, its standard error and dof as one row of a table: the 95 % half-width and the
    two-sided p of "no difference" (se 0: p 0 for a change, 1 for none; n < 2: nan)."""
    if n < 2 or math.isnan(se) or math.isnan(difference):
        return {"difference": difference, "se": se, "dof": dof, "n": n, "half_width": math.nan, "p": math.nan,
                "test": test}
    half = float(stats.t.ppf(0.975, dof) * se) if se > 0 else 0.0
    p = float(2 * stats.t.sf(abs(difference) / se, dof)) if se > 0 else float(difference == 0)
    return {"difference": float(difference), "se": float(se), "dof": float(dof), "n": int(n), "half_width": half,
            "p": p, "test": test}


def paired_test(values: list[float]) -> dict:
    """Per-seed differences (each run's two numbers share its seeds): a one-sample t on them."""
    s = summary(values)
    return t_test(s["mean"], s["sd"] / math.sqrt(s["n"]) if s["n"] > 1 else math.nan, s["n"] - 1, s["n"], "paired t")


def paired_from_interval(mean: float, half_width: float, n: int) -> dict:
    """``paired_test`` of n per-seed differences known by their mean and 95 % half-width only
    (the two are sufficient for it: a report that kept no per-run values)."""
    s = from_interval(mean, half_width, n)
    return t_test(s["mean"], s["sd"] / math.sqrt(n) if n > 1 else math.nan, n - 1, n, "paired t")


def with_test_images(test: dict, se_images: list[float | None]) -> dict:
    """A seeds' ``test`` (a ``t_test`` row over n runs) with the test images' own noise added:
    se sqrt(se_seeds^2 + se_images^2), se_images^2 the mean over the runs of each one's se^2 over
    the test images; the seeds' dof. The runs share their test images, so the images' error is
    one draw common to them all, which more seeds do not average away: it is added whole
    (conservative, the seeds' spread holds a part of it already). A run without its se: ``test``."""
    if not se_images or any(s is None or math.isnan(s) for s in se_images):
        return test
    se = math.sqrt(test["se"] ** 2 + float(np.mean(np.square(se_images))))
    return t_test(test["difference"], se, test["dof"], test["n"], f"{test['test']} + test images")


def welch_test(a: dict, b: dict) -> dict:
    """mean(b) - mean(a) of two groups of runs that share no seeds (each a ``summary``): Welch's t;
    one run of ``b``: where a further run of ``a`` would fall (a's sd, n_a - 1 dof)."""
    diff = b["mean"] - a["mean"]
    if a["n"] < 2:
        return t_test(diff, math.nan, math.nan, a["n"], "Welch")
    if b["n"] < 2:
        return t_test(diff, a["sd"] * math.sqrt(1 + 1 / a["n"]), a["n"] - 1, a["n"], "one run against the seeds")
    se, dof = sd_of_change({"sd": a["sd"] / math.sqrt(a["n"]), "n": a["n"]},
                           {"sd": b["sd"] / math.sqrt(b["n"]), "n": b["n"]})
    return t_test(diff, se, dof if se > 0 else min(a["n"], b["n"]) - 1, min(a["n"], b["n"]), "Welch")


def tost(test: dict, bound: float | None) -> float:
    """The p of two one-sided tests that the difference lies within ± ``bound`` (nan: no margin
    or no test)."""
    if bound is None or math.isnan(test["p"]):
        return math.nan
    d, se, dof = test["difference"], test["se"], test["dof"]
    if se == 0:
        return float(abs(d) >= bound)
    return float(max(stats.t.sf((d + bound) / se, dof), stats.t.sf((bound - d) / se, dof)))


def holm_adjusted(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's adjusted p of each key (nan ones left out): a key is rejected at family-wise rate
    alpha exactly when its adjusted p is <= alpha."""
    ordered = sorted((k for k, p in p_values.items() if not math.isnan(p)), key=p_values.get)
    out, running = {}, 0.0
    for i, key in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - i) * p_values[key]))
        out[key] = running
    return out


def decide(tests: dict[str, dict], margins: dict[str, float | None]) -> dict[str, dict]:
    """THE rule: each row of a table's family ``tests`` (``t_test``'s) with its Holm-adjusted p
    over the family's rows, its margin, its TOST p Holm-adjusted over the rows with a margin,
    and its verdict: 'beyond' (the difference test rejects), 'level' (TOST rejects), 'beyond,
    within the margin' (both), 'undecided' (neither) or 'not judged' (fewer than 2 runs)."""
    p_holm = holm_adjusted({k: t["p"] for k, t in tests.items()})
    eq = {k: tost(t, margins.get(k)) for k, t in tests.items()}
    eq_holm = holm_adjusted(eq)
    out = {}
    for key, t in tests.items():
        p, q = p_holm.get(key, math.nan), eq_holm.get(key, math.nan)
        differs, level = p <= ALPHA, q <= ALPHA
        verdict = "not judged" if math.isnan(p) else "beyond, within the margin" if differs and level else \
            "beyond" if differs else "level" if level else "undecided"
        out[key] = {**t, "p_holm": p, "margin": margins.get(key), "p_tost": eq[key], "p_tost_holm": q,
                    "verdict": verdict}
    return out


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
    """Per metric of ``changes`` (new - old) its verdict: 'identical', 'BEYOND noise' / 'level
    within ±m' / 'within noise' (Holm over the metrics whose ``floors``, (sd of the change,
    dof), have sd > 0; level: TOST within the metric's ``margin``, Holm over the same metrics;
    within noise: neither), 'within tolerance' / 'BEYOND tolerance' (sd 0; ``values``: the old
    numbers), or 'no floor' (None: no seed report of these configurations knows it)."""
    family = {k: f for k, f in floors.items() if k in changes and f is not None and f[0] > 0}
    keys = list(family)
    sd, dof = (np.array([family[k][i] for k in keys], dtype=np.float64) for i in (0, 1))
    change = np.array([changes[k] for k in keys], dtype=np.float64)
    p = dict(zip(keys, (2 * stats.t.sf(np.abs(change) / sd, dof)).tolist())) if keys else {}
    at_first_step = dict(zip(keys, floor(sd, dof, len(keys)).tolist())) if keys else {}
    flagged = holm(p)
    bounds = {k: margin(k, values.get(k)) for k in keys}
    level = holm({k: q for k in keys if not math.isnan(q := tost(
        {"difference": changes[k], "se": family[k][0], "dof": family[k][1], "p": 0.0}, bounds[k]))})
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
            row.update(floor=at_first_step[key], verdict="BEYOND noise" if key in flagged else
                       f"level within ±{bounds[key]:.2g}" if key in level else "within noise")
        out[key] = row
    return out


def configuration(params: dict, seed_key: str) -> dict[str, str]:
    """A run's configuration: its flat params but the training seed, values as text (as
    `dvc params diff` prints lists), so configurations from any source compare equal."""
    return {k: str(v) for k, v in params.items() if k != seed_key and v is not None}


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
