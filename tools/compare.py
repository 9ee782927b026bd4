"""`make compare`: two revisions or experiments, per headline metric old, new, change and
whether the change is beyond what the training seeds alone give: against the seed report of
each side's own configuration (reports/seeds*.json; none: "no floor"), the metrics that move
with the seed as one family (Holm; "level" only where two one-sided tests put the change within
the metric's margin), the others against a tolerance (tools/noise.py).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from stages.core.cli import run
from tools import noise, study
from tools.experiments import LIVE, SEED

def _dvc_diff(kind: str, a: str, b: str) -> dict[str, tuple]:
    """{key: (old, new)} from `dvc <kind> diff a b --json --all` (b: workspace)."""
    cmd = ["dvc", kind, "diff", a, *([b] if b != "workspace" else []), "--json", "--all"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("compare: no `dvc` on PATH; run `make compare`, or `source .venv/bin/activate` first")
    if out.returncode:
        sys.exit(f"compare: {' '.join(cmd)} failed: {out.stderr.strip()}")
    rows = {}
    for path, entries in (json.loads(out.stdout or "{}") or {}).items():
        if LIVE.fullmatch(path):  # per-epoch diagnostics, names shared by three stages (experiments.headline)
            continue
        for key, v in entries.items():
            rows[key] = (v.get("old"), v.get("new"))
    return rows


def metrics_diff(a: str, b: str) -> dict[str, tuple]:
    return _dvc_diff("metrics", a, b)


def configurations(a: str, b: str) -> tuple[dict, dict]:
    """Each side's configuration (tools/noise.py) from `dvc params diff`."""
    params = _dvc_diff("params", a, b)
    return tuple(noise.configuration({k: v[i] for k, v in params.items()}, SEED) for i in (0, 1))


def table(rows: dict[str, tuple], floor_of: dict[str, tuple[float, float] | None]) -> list[list[str]]:
    both = {k: v for k, v in rows.items() if v[0] is not None and v[1] is not None}
    judged = noise.judge({k: new - old for k, (old, new) in both.items()}, floor_of,
                         {k: old for k, (old, _) in both.items()})
    out = []
    for key, (old, new) in sorted(rows.items()):
        if key not in judged:
            out.append([key, str(old), str(new), "", "", "", "only in one"])
            continue
        j = judged[key]
        out.append([key, f"{old:.6g}", f"{new:.6g}", f"{j['change']:+.4g}",
                    "-" if j["floor"] is None else f"{j['floor']:.3g}",
                    "-" if j["p"] is None else f"{j['p']:.3g}", j["verdict"]])
    return out


def render(rows: list[list[str]], md: bool) -> str:
    head = ["metric", "old", "new", "change", "floor", "p", "verdict"]
    if md:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                          *("| " + " | ".join(r) + " |" for r in rows)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows])


def seeds_command(config: dict, base: dict) -> str:
    """The `make seeds` line that measures ``config``'s floor (its params that differ from HEAD's)."""
    changed = {k: v for k, v in config.items() if base.get(k) != v}
    if not changed:
        return "make seeds && make seeds-report"
    sets = " ".join(f"-S {k}={v}" for k, v in sorted(changed.items()))
    tag = "-".join(f"{k.rsplit('.', 1)[-1]}{v}" for k, v in sorted(changed.items()))
    return (f'make seeds SET="{sets}" TAG={tag}- && make seeds-report '
            f'REPORT_ARGS="{" ".join(f"--set {k}={v}" for k, v in sorted(changed.items()))} --out seeds_{tag}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", nargs="?", default="main", help="the old revision or experiment (default main)")
    parser.add_argument("b", nargs="?", default="workspace", help="the new one (default the workspace)")
    parser.add_argument("--md", action="store_true", help="a Markdown table, for a pull request")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a change is beyond the noise")
    args = parser.parse_args(argv)
    reports = study.seed_reports()
    config_a, config_b = configurations(args.a, args.b)
    found_a, found_b = noise.report_for(config_a, reports), noise.report_for(config_b, reports)
    rows = metrics_diff(args.a, args.b)
    rep_a = found_a[1] if found_a else None
    rep_b = rep_a if config_a == config_b else (found_b[1] if found_b else None)
    floor_of = noise.floors(list(rows), rep_a, rep_b)
    print(f"{args.a} -> {args.b}")
    for side, config, found in (("A", config_a, found_a), ("B", config_b, found_b)):
        if found:
            print(f"  {side}'s floor: {found[0]}, {len(found[1]['runs'])} seeds at these params")
        else:
            print(f"  {side}: no floor for these params: run {seeds_command(config, config_a)}")
        if config_a == config_b:
            break
    table_rows = table(rows, floor_of)
    print(render(table_rows, args.md))
    family = [r for r in table_rows if r[-1] in ("within noise", "BEYOND noise") or r[-1].startswith("level")
              or (r[-1] == "identical" and floor_of.get(r[0]) and floor_of[r[0]][0] > 0)]
    if family:
        print(f"compare: {len(family)} metrics move with the seed, judged as one family (Holm): a pure reseed "
              f"flags any of them in at most {noise.ALPHA * 100:.0f} % of comparisons (judged one by one at 5 %, it would "
              f"flag {noise.ALPHA * len(family):.2f} of them on average)")
    beyond = [r[0] for r in table_rows if r[-1].startswith("BEYOND")]
    moved = [r[0] for r in table_rows if r[-1] != "identical"]
    unjudged = [r[0] for r in table_rows if r[-1] == "no floor"]
    if not moved:
        print("compare: identical")
    elif beyond:
        print(f"compare: beyond the noise: {', '.join(beyond)}")
    elif unjudged:
        print(f"compare: within the noise where judged ({len(moved) - len(unjudged)} metrics moved); "
              f"no floor for {', '.join(unjudged)}")
    else:
        print(f"compare: within the noise ({len(moved)} metrics moved)")
    return 1 if args.strict and beyond else 0


if __name__ == "__main__":
    sys.exit(run(main))
