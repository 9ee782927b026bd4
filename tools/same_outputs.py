"""`python -m tools.same_outputs BEFORE [AFTER]`: did a change of the stages' code change any output?

BEFORE and AFTER are runs of the pipeline at the same params, each named by its dvc.lock: a git
revision or an experiment's name (`dvc exp show`), AFTER the workspace's when left out. When
every stage's params and every output's md5 (models, data, metrics, reports, figures) are the
same and only the code differs, reports/same_outputs.json keeps the pair of code states. A study
row run at BEFORE's code then stands for one at AFTER's (tools/study.py's ``flag``), so a change
that moves no output (a faster loop giving the same bits, code moved between modules) does not
send every study back to the queue. Anything else is one line naming what differs, and nothing is
written. Run it once per params a study runs at, the default and a latent experiment at least
(docs/experiments.md).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from stages.core.io import write_json
from tools.experiments import CODE, flat
from tools.study import REPO, SAME_OUTPUTS, digest, read_report


def lock_text(name: str | None, root: Path) -> tuple[str, str]:
    """dvc.lock at a git revision or an experiment's ref (refs/exps/.../<name>), the workspace's for
    None; and what names it in the record (the commit, the experiment's name or "workspace")."""
    if name is None:
        return (root / "dvc.lock").read_text(), "workspace"
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    refs = [r for r in git("for-each-ref", "--format=%(refname)", "refs/exps").stdout.split() if r.endswith(f"/{name}")]
    shown = git("show", f"{refs[-1] if refs else name}:dvc.lock")
    if shown.returncode:
        sys.exit(f"same_outputs: {name!r} is no git revision or experiment with a dvc.lock; name one that "
                 "`git log` or `dvc exp show` lists")
    return shown.stdout, name if refs else git("rev-parse", "--short=7", name).stdout.strip()


def params_of(stage: dict) -> dict:
    return {k.removeprefix("params.yaml."): v for k, v in flat(stage.get("params", {})).items()}


def compare(before: dict, after: dict) -> tuple[list[str], dict, dict]:
    """What differs between two dvc.lock runs other than the code ('' each), and their code states."""
    a, b = before.get("stages", {}), after.get("stages", {})
    code = [{d["path"]: d.get("md5") for s in lock.values() for d in s.get("deps") or [] if d["path"].startswith(CODE)}
            for lock in (a, b)]
    differ = [f"stages {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
    for name in sorted(set(a) & set(b)):
        for what, (old, new) in (("param", [params_of(s) for s in (a[name], b[name])]),
                                 ("output", [{o["path"]: o.get("md5") for o in s.get("outs") or []}
                                             for s in (a[name], b[name])])):
            differ += [f"{name}'s {what} {k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return differ, *code


def main(argv: list[str] | None = None, root: Path = REPO) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the run at the old code: a git revision or an experiment's name")
    parser.add_argument("after", nargs="?", help="the run at the new code (default: the workspace's dvc.lock)")
    args = parser.parse_args(argv)
    (before, old_name), (after, new_name) = (lock_text(name, root) for name in (args.before, args.after))
    try:
        locks = [yaml.safe_load(text) or {} for text in (before, after)]
    except yaml.YAMLError as e:
        sys.exit(f"same_outputs: a dvc.lock is not YAML ({str(e).splitlines()[0]}); `git checkout dvc.lock` "
                 "or rerun the pipeline (`dvc repro`)")
    differ, old, new = compare(*locks)
    if differ:
        sys.exit(f"same_outputs: not the same outputs, nothing recorded: {', '.join(differ[:6])}"
                 f"{f' and {len(differ) - 6} more' if len(differ) > 6 else ''}")
    if old == new:
        sys.exit("same_outputs: the two runs have the same code; nothing to record")
    params = {k: v for s in locks[1]["stages"].values() for k, v in params_of(s).items()}
    path = root / SAME_OUTPUTS
    kept = read_report(path) if path.exists() else {"checks": [], "code_states": {}}
    check = {"from": digest(old), "to": digest(new), "before": old_name, "after": new_name,
             "params": {k: params[k] for k in ("data.dataset", "latent_dim", "seed") if k in params},
             "outputs": sum(len(s.get("outs") or []) for s in locks[1]["stages"].values()),
             "changed": sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p)),
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    kept["checks"] = [c for c in kept["checks"] if (c["from"], c["to"], c["params"]) !=
                      (check["from"], check["to"], check["params"])] + [check]
    kept["code_states"].update({digest(old): old, digest(new): new})
    write_json(path, kept)
    print(f"same_outputs: {check['outputs']} outputs identical at {check['params']}; runs at code "
          f"{check['from']} stand for runs at {check['to']} ({', '.join(check['changed'])} changed); "
          f"kept in {SAME_OUTPUTS}")


if __name__ == "__main__":
    main()
