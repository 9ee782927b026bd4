"""DVC's experiments from outside the pipeline: queue runs, wait for the queue with a line
of progress, read `dvc exp show --json` as a list of runs, and a run's files (dvc.api: from
git, DVC's cache or its remote)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PENDING = {"queued", "running"}
SEED = "seed"  # params.yaml's training seed, of train_classifier, train_ae and train_vae; a seed study sweeps it
CODE = "stages/"  # a run's code: its dvc.lock deps under this folder (the stages and their library)
LIVE = re.compile(r"plots/(\w+)/live/metrics\.json")  # a training stage's DVCLive summary, a metric of dvc.yaml


def flat(tree: dict, prefix: str = "") -> dict:
    """{"train_ae": {"lr": 0.008}} -> {"train_ae.lr": 0.008}: params and metrics as DVC names them."""
    out = {}
    for key, value in (tree or {}).items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def headline(metrics: dict) -> dict:
    """A run's metrics ({file: values}, as `dvc exp show` and `dvc metrics diff` give them) by
    flat DVC name, less the training stages' DVCLive summaries: per-epoch diagnostics whose
    names (train_loss, step, ...) repeat across the three stages, so flat they would overwrite
    each other."""
    return {k: v for path, values in (metrics or {}).items() if not LIVE.fullmatch(path)
            for k, v in (flat(values) if isinstance(values, dict) else {}).items()}


def queue(runs: list[tuple[str | None, dict]], jobs: int = 1) -> None:
    """``dvc exp run --queue`` each (name, {param: value}), then ``dvc queue start`` with ``jobs``
    workers, each with cores / jobs torch and BLAS threads (docs/experiments.md)."""
    for name, params in runs:
        sets = [a for k, v in params.items() for a in ("-S", f"{k}={v}")]
        subprocess.run(["dvc", "exp", "run", "--queue", *(["--name", name] if name else []), *sets], check=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(max(1, os.cpu_count() // jobs))} if jobs > 1 else {})}
    subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], check=True, env=env)


def dvc_exp_show(rev: str) -> list[dict]:
    out = subprocess.run(["dvc", "exp", "show", "--json", "--rev", rev], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def runs(show: list[dict], workspace: bool = False) -> list[dict]:
    """The baseline commits' runs and their experiments, as {name, baseline, state, timestamp,
    rev, params, metrics, code}: ``state`` the queue's (a run outside it: success), ``metrics`` by
    file (a running run's: what its workspace holds so far), ``code`` the md5 of each dep under
    CODE ({path: md5}, as the run's dvc.lock has it)."""
    out = []

    def entry(node: dict, name: str, baseline: str, state: str) -> dict:
        data = node.get("data") or {}
        files = lambda kind: {f: (v or {}).get("data", {}) for f, v in (data.get(kind) or {}).items()}  # noqa: E731
        return {"name": name, "baseline": baseline, "state": state, "timestamp": data.get("timestamp") or "",
                "rev": node.get("rev", ""), "params": files("params").get("params.yaml", {}),
                "metrics": files("metrics"), "code": {p: (d or {}).get("hash") for p, d in
                                                      (data.get("deps") or {}).items() if p.startswith(CODE)}}

    for commit in show:
        if commit.get("rev") == "workspace":
            out += [entry(commit, "workspace", "workspace", "success")] if workspace else []
            continue
        name = commit.get("name") or commit["rev"][:7]
        out.append(entry(commit, name, name, "success"))
        for exp in commit.get("experiments") or []:
            executor = exp.get("executor") or {}
            out += [entry(rev, rev.get("name") or exp.get("name") or rev["rev"][:7], name,
                          executor.get("state", "success")) for rev in exp.get("revs") or []]
    return out


def duration(seconds: float) -> str:
    """3725 -> '1 h 02 min', 130 -> '2 min 10 s', 42 -> '42 s'."""
    s = int(round(seconds))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s" if s >= 60 \
        else f"{s} s"


def where(entry: dict) -> str:
    """Where a running run is, from what DVCLive wrote (stages/core/training.py) as `dvc exp show`
    reads it from the run's workspace: the training stage whose live summary
    (plots/<stage>/live/metrics.json) is partial, as "train_ae 3/7", its step (epochs done) of
    the run's <stage>.epochs; "" where none is (before, between or after them)."""
    partial = [(m[1], live) for f, live in (entry.get("metrics") or {}).items()
               if (m := LIVE.fullmatch(f)) and (live or {}).get("partial")]
    if not partial:
        return ""
    stage, live = partial[-1]  # one at a time in a run; the last in dvc.yaml's order if a killed one lingers
    total = ((entry.get("params") or {}).get(stage) or {}).get("epochs")
    return f"{stage} {live.get('step') or 0}" + (f"/{total}" if total else "")


class Progress:
    """How far the queue is: the runs pending at the first look are the work (less those taken
    off the queue since); a line gives the runs done, each one running, for how long (since a
    look first saw it running) and where (:func:`where`), the time elapsed and the rest at the
    mean time of the runs done."""

    def __init__(self, who: str):
        self.who, self.clock = who, time.monotonic
        self.start, self.work, self.running_since = self.clock(), [], {}

    def line(self, entries: list[dict]) -> str:
        now, by_name = self.clock(), {e["name"]: e for e in entries}
        pending = {e["name"]: e["state"] for e in entries if e["state"] in PENDING}
        self.work = [n for n in self.work if n in by_name] + [n for n in pending if n not in self.work]
        done = [n for n in self.work if n not in pending]
        running = [n for n, state in pending.items() if state == "running"]
        for n in running:
            self.running_since.setdefault(n, now)
        elapsed, failed = now - self.start, sum(by_name[n]["state"] == "failed" for n in done)
        head = f"{self.who}: {len(done)} of {len(self.work)} runs done" + (f" ({failed} failed)" if failed else "")
        if not pending:
            return head + f" in {duration(elapsed)}" + (f" ({duration(elapsed / len(done))} a run)" if done else "")
        parts = [head] + [f"running {n} ({duration(now - self.running_since[n])}"
                          f"{', ' + step if (step := where(by_name[n])) else ''})" for n in running]
        parts += ([] if running else ["none running yet"]) + [f"elapsed {duration(elapsed)}"]
        per_run = elapsed / len(done) if done else 0.0  # the runs done so far, one worker after another
        parts.append(f"about {duration(per_run * (len(self.work) - len(done)))} left ({duration(per_run)} a run)"
                     if done else "an estimate after the first run")
        return ", ".join(parts)


def wait(rev: str, poll: float, who: str = "sweep") -> list[dict]:
    """The runs of ``rev`` once none is queued or running, a line of progress at each look;
    queued runs with none running on two looks in a row mean no worker: stop and say so."""
    idle, progress = 0, Progress(who)
    while True:
        entries = runs(dvc_exp_show(rev))
        pending = [e for e in entries if e["state"] in PENDING]
        if pending or progress.work:
            print(progress.line(entries), flush=True)
        if not pending:
            return entries
        idle = idle + 1 if all(e["state"] == "queued" for e in pending) else 0
        if idle >= 2:
            sys.exit(f"{who}: {len(pending)} experiment(s) queued but none running; start the workers with "
                     f"`dvc queue start` (or `make {who}`), then run this again")
        time.sleep(poll)


WORKSPACE = (None, "", "workspace")  # how runs() and dvc exp show name the workspace


def _label(rev: str | None) -> str:
    return "the workspace" if rev in WORKSPACE else rev[:7]


def _read(rev: str | None, path: str, root: Path, who: str) -> bytes | None:
    """``path`` as the run ``rev`` has it, through dvc.api (a git-tracked file, or an output
    from DVC's cache or its remote, whatever the layout); None where the run has no such file."""
    import dvc.api
    from dvc.exceptions import DvcException, PathMissingError

    run, rev = _label(rev), None if rev in WORKSPACE else rev
    try:
        return dvc.api.read(path, repo=str(root), rev=rev, mode="rb")
    except PathMissingError:
        if dvc.api.DVCFileSystem(str(root), rev=rev).exists(path):  # its dvc.lock names it; the bytes are not here
            raise SystemExit(f"{who}: {run}'s {path} is in neither DVC's cache nor its remote; fetch it "
                             f"(`dvc exp pull origin <exp>`, `dvc pull`) and run this again") from None
        return None
    except DvcException as e:
        raise SystemExit(f"{who}: cannot read {path} of {run}: {' '.join(str(e).split())}") from None


def run_file(rev: str, path: str, root: Path = Path("."), who: str = "experiments") -> bytes:
    """The bytes of ``path`` in the run ``rev`` (a commit's or an experiment's: its figures);
    where it has none, one line naming both."""
    data = _read(rev, path, root, who)
    if data is None:
        raise SystemExit(f"{who}: {_label(rev)} has no {path}, in git or as a DVC output")
    return data


def run_json(rev: str, path: str, root: Path = Path("."), who: str = "experiments") -> dict:
    """A JSON file of the run ``rev`` (its reports/), or {} where it has none."""
    data = _read(rev, path, root, who)
    return {} if data is None else json.loads(data)
