"""Reading DVC's experiments: `dvc exp show --json` as a list of runs, waiting for the
queue, and a run's files (git-tracked ones with ``git show``, cached ones by the md5 its
dvc.lock records). Shared by the sweep, seed, exercise, course and experiment-table tools."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

PENDING = {"queued", "running"}


def dvc_exp_show(rev: str) -> list[dict]:
    out = subprocess.run(["dvc", "exp", "show", "--json", "--rev", rev], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def runs(show: list[dict], workspace: bool = False) -> list[dict]:
    """The baseline commits' runs and their experiments, as {name, baseline, state,
    timestamp, rev, params, metrics}, from ``dvc exp show --json`` (the workspace entry only if
    asked). ``baseline`` names the commit a run belongs to (a commit's own run: its own
    name). ``state`` is the queue's (queued, running, success, failed); a run outside the
    queue has none and counts as a success."""
    out = []

    def entry(node: dict, name: str, baseline: str, state: str) -> dict:
        data = node.get("data") or {}
        files = lambda kind: {f: (v or {}).get("data", {}) for f, v in (data.get(kind) or {}).items()}
        return {"name": name, "baseline": baseline, "state": state, "timestamp": data.get("timestamp") or "",
                "rev": node.get("rev", ""), "params": files("params").get("params.yaml", {}),
                "metrics": files("metrics")}

    for commit in show:
        if commit.get("rev") == "workspace":
            if workspace:
                out.append(entry(commit, "workspace", "workspace", "success"))
            continue
        name = commit.get("name") or commit["rev"][:7]
        out.append(entry(commit, name, name, "success"))
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            for rev in exp.get("revs") or []:
                out.append(entry(rev, rev.get("name") or exp.get("name") or rev["rev"][:7], name, state))
    return out


SEED_KEYS = ("train_classifier.seed", "train_ae.seed", "train_vae.seed")


def flat(tree: dict, prefix: str = "") -> dict:
    """{"train_ae": {"seed": 0}} -> {"train_ae.seed": 0}: params and metrics as DVC names them."""
    out = {}
    for key, value in (tree or {}).items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def wait(rev: str, poll: float, who: str = "sweep") -> list[dict]:
    """The runs of ``rev`` once none is queued or running. Queued runs with none running
    on two looks in a row mean no worker: stop and say so rather than wait forever."""
    idle = 0
    while True:
        entries = runs(dvc_exp_show(rev))
        pending = [e["name"] for e in entries if e["state"] in PENDING]
        if not pending:
            return entries
        idle = idle + 1 if all(e["state"] == "queued" for e in entries if e["state"] in PENDING) else 0
        if idle >= 2:
            sys.exit(f"{who}: {len(pending)} experiment(s) queued but none running; start the workers with "
                     f"`dvc queue start` (or `make {who}`), then run this again")
        print(f"{who}: waiting for {len(pending)} experiment(s): {', '.join(pending)}", flush=True)
        time.sleep(poll)


def cached_png(rev: str, path: str, root: Path, who: str = "exercises") -> Path:
    """The file DVC cached for ``path`` in the run ``rev`` (its dvc.lock names the md5)."""
    lock = yaml.safe_load(subprocess.run(["git", "show", f"{rev}:dvc.lock"], cwd=root, capture_output=True,
                                         text=True, check=True).stdout)
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                md5 = out["md5"]
                return root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    raise SystemExit(f"{who}: {rev[:7]}'s dvc.lock has no {path}")
