"""How far a number moves when only the training seeds change, and when a change between
two runs is beyond that.

The seed report (`make seeds-report`) summarizes N runs of the same params that differ
only in their training seeds: per metric the mean, the sample sd and a 95 % confidence
interval of the mean (Student's t, N - 1 degrees of freedom); per comparison the same for
the paired difference, run by run (both numbers of one run share its seeds and its data).
A reviewer's comparison of two single runs (`make compare`) asks whether their change is
beyond what two seeds alone give: two independent runs differ by a change of sd
sqrt(2) * sd, and the rule flags |change| > 2 * sqrt(2) * sd (about 95 % two-sided, for
normal noise). A metric the seeds do not move (sd 0) flags any change.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

Z = 2.0  # the comparison rule's multiple of the sd of a difference of two runs


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


def floor(sd: float) -> float:
    """The smallest |change| between two single runs that the rule calls beyond the noise."""
    return Z * math.sqrt(2) * sd


def verdict(change: float, sd: float | None) -> str:
    """'identical', 'within noise', 'BEYOND noise', or 'no floor' for a metric the seed
    report does not know."""
    if change == 0:
        return "identical"
    if sd is None or math.isnan(sd):
        return "no floor"
    return "BEYOND noise" if abs(change) > floor(sd) else "within noise"
