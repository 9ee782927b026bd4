"""`python -m tools.same_outputs BEFORE [AFTER] --why TEXT`: did a change of the stages' code change any output?

BEFORE and AFTER are runs of the pipeline at the same params, each named by its dvc.lock: a git
revision or an experiment's name (`dvc exp show`), AFTER the workspace's when left out. When
every stage's params and every output's md5 (models, data, metrics, reports, figures) are the
same and only the code differs, reports/same_outputs.json keeps the pair of code states. A study
row run at BEFORE's code then stands for one at AFTER's (tools/study.py's ``flag``), so a change
that moves no output (a faster loop giving the same bits, code moved between modules) does not
send every study back to the queue. Anything else is one line naming what differs, and nothing is
written. A check shows the change neutral at its params only, yet carries every row: ``--why``
says why it holds at all the others (every report that carries a row quotes it). Run it at the
default params and a latent experiment at least (docs/experiments.md); BEFORE and AFTER must be
complete runs (every stage at one version of each code file).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from stages.core.cli import run
from stages.core.io import write_json
from tools.experiments import flat
from tools.study import REPO, SAME_OUTPUTS, code_of, digest, mixed_code, read_report

KEY_PARAMS = ("data.dataset", "latent_dim", "seed")  # named in every check; any other only where not params.yaml's


def lock_text(name: str | None, root: Path) -> tuple[str, str]:
    """dvc.lock at a git revision or an experiment's ref (refs/exps/.../<name>), the workspace's for
    None or "workspace" (as `make compare` names it); and what names it in the record (the commit;
    the experiment's name and commit; "workspace")."""
    if name in (None, "workspace"):
        if not (root / "dvc.lock").exists():
            sys.exit("same_outputs: the workspace has no dvc.lock; run the pipeline (`dvc repro`) or name two runs")
        return (root / "dvc.lock").read_text(), "workspace"
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)  # noqa: E731
    refs = [r for r in git("for-each-ref", "--format=%(refname)", "refs/exps").stdout.split() if r.endswith(f"/{name}")]
    if len(refs) > 1:
        sys.exit(f"same_outputs: {len(refs)} experiments are named {name!r} (under baselines "
                 f"{', '.join(r.split('/')[2] + r.split('/')[3][:5] for r in refs)}); name a commit instead")
    rev = refs[0] if refs else name
    shown = git("show", f"{rev}:dvc.lock")
    if shown.returncode:
        sys.exit(f"same_outputs: {name!r} is no git revision or experiment with a dvc.lock; name one that "
                 "`git log` or `dvc exp show` lists")
    commit = git("rev-parse", "--short=7", rev).stdout.strip()
    return shown.stdout, f"{name} ({commit})" if refs else commit


def params_of(stage: dict) -> dict:
    return {k.removeprefix("params.yaml."): v for k, v in flat(stage.get("params", {})).items()}


def compare(before: dict, after: dict) -> list[str]:
    """What differs between two dvc.lock runs other than the code: stages, params, outputs."""
    a, b = before.get("stages", {}), after.get("stages", {})
    differ = [f"stages {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
    for name in sorted(set(a) & set(b)):
        for what, (old, new) in (("param", [params_of(s) for s in (a[name], b[name])]),
                                 ("output", [{o["path"]: o.get("md5") for o in s.get("outs") or []}
                                             for s in (a[name], b[name])])):
            differ += [f"{name}'s {what} {k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return differ


def main(argv: list[str] | None = None, root: Path = REPO) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the run at the old code: a git revision or an experiment's name")
    parser.add_argument("after", nargs="?", help="the run at the new code (default, or 'workspace': the "
                        "workspace's dvc.lock)")
    parser.add_argument("--why", required=True, help="why the change moves no output at any params, not only "
                        "these (every report that carries a row quotes it)")
    args = parser.parse_args(argv)
    if not args.why.strip():
        sys.exit('same_outputs: say why the change moves no output at any params: --why "..." (make ... WHY="...")')
    (before, old_name), (after, new_name) = (lock_text(name, root) for name in (args.before, args.after))
    try:
        locks = [(yaml.safe_load(text) or {}).get("stages", {}) for text in (before, after)]
    except yaml.YAMLError as e:
        sys.exit(f"same_outputs: a dvc.lock is not YAML ({str(e).splitlines()[0]}); `git checkout dvc.lock` "
                 "or rerun the pipeline (`dvc repro`)")
    for name, stages in zip((old_name, new_name), locks):
        if mixed := mixed_code(stages):
            sys.exit(f"same_outputs: {name}'s stages ran at different versions of {', '.join(mixed)} (a partial "
                     "rerun); compare complete runs: `dvc repro` reruns every stage whose code changed")
    if differ := compare(*({"stages": s} for s in locks)):
        sys.exit(f"same_outputs: not the same outputs, nothing recorded: {', '.join(differ[:6])}"
                 f"{f' and {len(differ) - 6} more' if len(differ) > 6 else ''}")
    old, new = (code_of(stages) for stages in locks)
    if old == new:
        sys.exit("same_outputs: the two runs have the same code; nothing to record")
    params = {k: v for s in locks[1].values() for k, v in params_of(s).items()}
    defaults = flat(yaml.safe_load((root / "params.yaml").read_text()) or {}) if (root / "params.yaml").exists() else {}
    path = root / SAME_OUTPUTS
    kept = read_report(path) if path.exists() else {}
    check = {"from": digest(old), "to": digest(new), "before": old_name, "after": new_name, "why": args.why,
             "params": {k: v for k, v in params.items() if k in KEY_PARAMS or defaults.get(k, v) != v},
             "outputs": sum(len(s.get("outs") or []) for s in locks[1].values()),
             "changed": sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p)),
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    kept["checks"] = [c for c in kept.get("checks", []) if (c.get("from"), c.get("to"), c.get("params")) !=
                      (check["from"], check["to"], check["params"])] + [check]
    kept["code_states"] = {**kept.get("code_states", {}), digest(old): old, digest(new): new}
    write_json(path, kept)
    print(f"same_outputs: {check['outputs']} outputs identical at {check['params']}; runs at code "
          f"{check['from']} stand for runs at {check['to']} ({', '.join(check['changed'])} changed); "
          f"kept in {SAME_OUTPUTS}")


if __name__ == "__main__":
    run(main)
