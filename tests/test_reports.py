"""The committed study reports are what their tools make of the values they keep: each
report's tables and verdicts, recomputed in a temporary folder from its committed JSON alone
(`--reuse`, `--refresh`: nothing is trained or queued), equal the committed ones. A table
edited by hand, or judged by an older rule, fails here."""
from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO

from tools import bottleneck_control, budget, noise, seeds, sweep


@pytest.fixture
def reports(tmp_path):
    """A root holding a copy of the committed reports/ and params.yaml."""
    shutil.copytree(REPO / "reports", tmp_path / "reports")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def same(root, name: str) -> None:
    for ext in ("md", "json"):
        made, kept = (root / "reports" / f"{name}.{ext}").read_text(), (REPO / "reports" / f"{name}.{ext}").read_text()
        if ext == "json":
            made, kept = json.loads(made), json.loads(kept)
        assert made == kept, f"reports/{name}.{ext} is not what its tool makes of its JSON: rewrite it with its tool"


def test_the_bottleneck_table_is_recomputed_from_its_per_run_rows(reports):
    """Every number and verdict of reports/bottleneck.md from the runs its JSON keeps, one row per
    (dataset, size, seed) with its code state: the summaries, the size cost paired by seed, Holm
    over the table."""
    saved = json.loads((REPO / "reports/bottleneck.json").read_text())
    rows = [r for r in saved["rows"] if r["dataset"] == "fashion_mnist" and not r["stale"]]
    two, eight = ({r["seed"]: r["mlp"] for r in rows if r["latent_dim"] == d} for d in (2, 8))
    cost = noise.paired_test([two[s] - eight[s] for s in sorted(two)])
    kept = next(d for d in saved["differences"] if (d["dataset"], d["size"], d["name"]) ==
                ("fashion_mnist", "d = 8 → 2", "MLP probe accuracy"))
    assert kept["difference"] == pytest.approx(cost["difference"], abs=1e-12) and kept["n"] == len(two) == 3
    saved["sizes"] = {}  # the tables come from the runs, not from the summaries the JSON also keeps
    (reports / "reports/bottleneck.json").write_text(json.dumps(saved))
    bottleneck_control.main(["--reuse"], root=reports)
    same(reports, "bottleneck")


@pytest.mark.parametrize("out", ["sweep", "sweep_mnist"])
def test_the_sweep_tables_are_their_json_judged_by_the_one_rule(reports, out):
    """The sweeps kept each size's summaries (no per-run rows before this rule): each paired
    difference's mean and half-width over its seeds, which the paired t needs and no more."""
    sweep.main(["--reuse", "--out", out], root=reports)
    same(reports, out)


def test_the_budget_table_is_its_json_judged_by_the_one_rule(reports):
    budget.main(["--reuse"], root=reports)
    same(reports, "budget")


@pytest.mark.parametrize("out", ["seeds", "seeds_mnist"])
def test_the_seed_reports_are_their_per_run_values_judged_by_the_one_rule(reports, out):
    seeds.main(["--refresh", "--out", out], root=reports)
    same(reports, out)
