"""`make compare`: two revisions or experiments, per headline metric old, new, change, and
whether the change is beyond the committed noise floor (reports/seeds.json).

Beside `dvc metrics diff`, which prints the change alone: a change counts as beyond the
noise when |change| > 2 * sqrt(2) * sd, sd being the metric's spread over runs that
differ only in their training seeds (stages/core/noise.py says why). The floor was
measured at the params in its header; for other params (another latent_dim, dataset)
it is a guide, not a measurement.

    python tools/compare.py [A [B]] [--md] [--strict]     # A: main, B: the workspace
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stages.core.io import read_json  # noqa: E402
from tools import noise  # noqa: E402

FLOOR = Path("reports/seeds.json")


def metrics_diff(a: str, b: str) -> dict[str, tuple]:
    """{metric: (old, new)} from `dvc metrics diff a b --json --all` (b: workspace)."""
    cmd = ["dvc", "metrics", "diff", a, *([b] if b != "workspace" else []), "--json", "--all"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("compare: no `dvc` on PATH; run `make compare`, or `source .venv/bin/activate` first")
    if out.returncode:
        sys.exit(f"compare: {' '.join(cmd)} failed: {out.stderr.strip()}")
    rows = {}
    for metrics in (json.loads(out.stdout or "{}") or {}).values():
        for key, v in metrics.items():
            rows[key] = (v.get("old"), v.get("new"))
    return rows


def table(rows: dict[str, tuple], floor: dict) -> list[list[str]]:
    out = []
    for key, (old, new) in sorted(rows.items()):
        sd = floor.get(key, {}).get("sd")
        if old is None or new is None:
            out.append([key, str(old), str(new), "", "", "only in one"])
            continue
        change = new - old
        out.append([key, f"{old:.6g}", f"{new:.6g}", f"{change:+.4g}",
                    f"{noise.floor(sd):.3g}" if sd is not None else "-", noise.verdict(change, sd)])
    return out


def render(rows: list[list[str]], md: bool) -> str:
    head = ["metric", "old", "new", "change", "floor", "verdict"]
    if md:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                          *("| " + " | ".join(r) + " |" for r in rows)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", nargs="?", default="main", help="the old revision or experiment (default main)")
    parser.add_argument("b", nargs="?", default="workspace", help="the new one (default the workspace)")
    parser.add_argument("--floor", type=Path, default=FLOOR, help="the seed report holding the noise floor")
    parser.add_argument("--md", action="store_true", help="a Markdown table, for a pull request")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a change is beyond the noise")
    args = parser.parse_args(argv)
    if not args.floor.is_file():
        sys.exit(f"compare: no noise floor at {args.floor}; run `make seeds` and `make seeds-report` first")
    seeds = read_json(args.floor)
    rows = table(metrics_diff(args.a, args.b), seeds["metrics"])
    print(f"{args.a} -> {args.b}; floor: {len(seeds['runs'])} seeds at the committed params"
          f"{' with ' + str(seeds['params']) if seeds.get('params') else ''} ({args.floor}); "
          f"beyond the noise: |change| > 2·√2·sd")
    print(render(rows, args.md))
    beyond = [r[0] for r in rows if r[-1] == "BEYOND noise"]
    moved = [r[0] for r in rows if r[-1] not in ("identical",)]
    if not moved:
        print("compare: identical")
    elif not beyond:
        print(f"compare: within the noise floor ({len(moved)} metrics moved)")
    else:
        print(f"compare: beyond it: {', '.join(beyond)}")
    return 1 if args.strict and beyond else 0


if __name__ == "__main__":
    sys.exit(main())
