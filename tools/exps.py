"""`make exps`: the experiments of `dvc exp show` in one screen, under 120 columns: per row
the params that differ from the baseline's and the headline numbers. Arguments go to
`dvc exp show` (`-A`, `--rev main`, `-n 3`)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tools.experiments import flat, headline, runs
from tools.study import HEADLINE, num

COLUMNS = {key: column for key, _, column in HEADLINE if column}
WIDTH = 120
NAME = 24  # longer experiment or branch names are cut


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def rows(show: list[dict]) -> list[dict]:
    """One row per workspace, baseline commit and experiment: name, baseline, params
    (flat), metrics by column."""
    out = []
    for e in runs(show, workspace=True):
        metrics = headline(e["metrics"])
        out.append({"name": e["name"], "baseline": e["baseline"], "params": flat(e["params"]),
                    "metrics": {col: metrics.get(key) for key, col in COLUMNS.items()}})
    return out


def compact(changed: dict) -> str:
    """key=value pairs; keys of several sections that share a name and a value once, as
    name=value (xN): a budget run's train_ae.epochs and train_vae.epochs read epochs=21 (x2)."""
    groups: dict[tuple, list[str]] = {}
    for key, value in changed.items():
        groups.setdefault((key.rsplit(".", 1)[-1], repr(value)), []).append(key)
    return " ".join(f"{keys[0]}={changed[keys[0]]}" if len(keys) == 1 else f"{leaf}={changed[keys[0]]} (x{len(keys)})"
                    for (leaf, _), keys in groups.items())


def table(entries: list[dict]) -> str:
    """The rows as text: each row's params that differ from its baseline commit's."""
    bases = {e["name"]: e["params"] for e in entries if e["name"] == e["baseline"]}
    lines = []
    for e in entries:
        experiment = e["name"] != e["baseline"]
        base = bases.get(e["baseline"], {})
        changed = compact({k: v for k, v in e["params"].items() if base.get(k) != v}) if experiment else ""
        lines.append([cut(("  " if experiment else "") + e["name"], NAME), changed, *(num(e["metrics"][col]) for col in COLUMNS.values())])
    head = ["Experiment", "changed params", *COLUMNS.values()]
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
    spare = WIDTH - sum(widths) - 2 * (len(head) - 1)
    if spare < 0:  # the params column gives way: it is the only free-length one
        widths[1] = max(len(head[1]), widths[1] + spare)
        lines = [[r[0], cut(r[1], widths[1]), *r[2:]] for r in lines]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(head), *map(fmt, lines)])


def main(argv: list[str]) -> None:
    # -h is ours; every other argument is `dvc exp show`'s (its own help: `dvc exp show -h`).
    parser = argparse.ArgumentParser(prog="python -m tools.exps", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Options of `dvc exp show` (see `dvc exp show -h`) pass through.")
    _, passed = parser.parse_known_args(argv)
    try:
        result = subprocess.run(["dvc", "exp", "show", "--json", *passed], capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("exps: no `dvc` on PATH; run `make exps`, or `source .venv/bin/activate` first")
    if result.returncode:
        sys.exit(f"exps: dvc exp show failed: {' '.join(result.stderr.split())}")
    try:
        show = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        sys.exit(f"exps: `dvc exp show --json {' '.join(passed)}` printed no JSON: {' '.join(result.stdout.split())[:200]}")
    print(table(rows(show)))


if __name__ == "__main__":
    main(sys.argv[1:])
