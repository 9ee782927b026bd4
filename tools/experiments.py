"""Reading DVC's experiments: `dvc exp show --json` as a list of runs, waiting for the
queue, and a run's files (git-tracked ones with ``git show``, cached ones by the md5 its
dvc.lock records). Shared by the sweep, budget, seed, exercise, course and
experiment-table tools."""
from __future__ import annotations

import argparse
import json
import os
import re
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
    queue has none and counts as a success. ``pid`` and ``log``: the queue's process and
    output file for a run it ran (None otherwise)."""
    out = []

    def entry(node: dict, name: str, baseline: str, state: str, local: dict | None = None) -> dict:
        data = node.get("data") or {}
        files = lambda kind: {f: (v or {}).get("data", {}) for f, v in (data.get(kind) or {}).items()}
        return {"name": name, "baseline": baseline, "state": state, "timestamp": data.get("timestamp") or "",
                "rev": node.get("rev", ""), "params": files("params").get("params.yaml", {}),
                "metrics": files("metrics"), "pid": (local or {}).get("pid"), "log": (local or {}).get("log")}

    for commit in show:
        if commit.get("rev") == "workspace":
            if workspace:
                out.append(entry(commit, "workspace", "workspace", "success"))
            continue
        name = commit.get("name") or commit["rev"][:7]
        out.append(entry(commit, name, name, "success"))
        for exp in commit.get("experiments") or []:
            executor = exp.get("executor") or {}
            state = executor.get("state", "success")
            for rev in exp.get("revs") or []:
                out.append(entry(rev, rev.get("name") or exp.get("name") or rev["rev"][:7], name, state,
                                 executor.get("local")))
    return out


SEED_KEYS = ("train_classifier.seed", "train_ae.seed", "train_vae.seed")


def flat(tree: dict, prefix: str = "") -> dict:
    """{"train_ae": {"seed": 0}} -> {"train_ae.seed": 0}: params and metrics as DVC names them."""
    out = {}
    for key, value in (tree or {}).items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def duration(seconds: float) -> str:
    """3725 -> '1 h 02 min', 130 -> '2 min 10 s', 42 -> '42 s'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# A stage's progress line in a run's log: "Running stage 'evaluate':", "train_ae 3/21: ...",
# "downstream ae 3/24: ...".
STEP = re.compile(r"^Running stage '([\w-]+)'|^([A-Za-z_][\w ]*?) (\d+)/(\d+):")


def run_age(pid: int | None) -> float | None:
    """Seconds since the process ``pid`` started (Linux's /proc); None where unknown."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def last_step(log: str | None) -> str:
    """Where a running experiment is, from the end of its log: "train_ae 3/21" (epochs done
    of the stage's), "stage evaluate"; "" where the log says nothing yet or is unreadable."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read().decode(errors="replace")
    except (OSError, TypeError):
        return ""
    for line in reversed(tail.splitlines()):
        m = STEP.match(line.strip())
        if m:
            return f"stage {m[1]}" if m[1] else f"{m[2]} {m[3]}/{m[4]}"
    return ""


class Progress:
    """How far the queue is, from successive looks at it: the runs pending at the first
    look are the work (less any taken off the queue since); a line says how many are done,
    which one runs, for how long (since its process started where the queue names it, else
    since it was first seen running) and where it is (its log's last stage or epoch line),
    the time since the first look, and the rest at the mean time of the runs done."""

    def __init__(self, who: str):
        self.who, self.clock = who, time.monotonic
        self.start = self.clock()
        self.work: list[str] = []
        self.running_since: dict[str, float] = {}

    def line(self, entries: list[dict]) -> str:
        now = self.clock()
        pending = {e["name"]: e["state"] for e in entries if e["state"] in PENDING}
        present = {e["name"] for e in entries}  # a run taken off the queue (dvc queue remove) is no work
        self.work = [n for n in self.work if n in present] + [n for n in pending if n not in self.work]
        done = [n for n in self.work if n not in pending]
        running = [n for n, state in pending.items() if state == "running"]
        by_name = {e["name"]: e for e in entries}
        for n in running:
            age = run_age(by_name[n].get("pid"))
            self.running_since.setdefault(n, now - age if age is not None else now)
        elapsed = now - self.start
        failed = sum(e["state"] == "failed" for e in entries if e["name"] in done)
        parts = [f"{self.who}: {len(done)} of {len(self.work)} runs done" + (f" ({failed} failed)" if failed else "")]
        if not pending:
            return parts[0] + f" in {duration(elapsed)}" + (f" ({duration(elapsed / len(done))} a run)" if done else "")
        for n in running:
            step = last_step(by_name[n].get("log"))
            parts.append(f"running {n} ({duration(now - self.running_since[n])}{', ' + step if step else ''})")
        if not running:
            parts.append("none running yet")
        parts.append(f"elapsed {duration(elapsed)}")
        if done:
            per_run = elapsed / len(done)  # the runs done so far, one worker after another
            parts.append(f"about {duration(per_run * (len(self.work) - len(done)))} left "
                         f"({duration(per_run)} a run)")
        else:
            parts.append("an estimate after the first run")
        return ", ".join(parts)


def wait(rev: str, poll: float, who: str = "sweep") -> list[dict]:
    """The runs of ``rev`` once none is queued or running, with a line of progress at each
    look. Queued runs with none running on two looks in a row mean no worker: stop and
    say so rather than wait forever."""
    idle = 0
    progress = Progress(who)
    while True:
        entries = runs(dvc_exp_show(rev))
        pending = [e["name"] for e in entries if e["state"] in PENDING]
        if not pending:
            if progress.work:
                print(progress.line(entries), flush=True)
            return entries
        idle = idle + 1 if all(e["state"] == "queued" for e in entries if e["state"] in PENDING) else 0
        if idle >= 2:
            sys.exit(f"{who}: {len(pending)} experiment(s) queued but none running; start the workers with "
                     f"`dvc queue start` (or `make {who}`), then run this again")
        print(progress.line(entries), flush=True)
        time.sleep(poll)


def report_args(parser: argparse.ArgumentParser, out: str, free: str) -> None:
    """The arguments of a report on queued runs (the sweep's, the budget's): which commits'
    runs, how often to look, the params the runs set besides ``free``, the report's name."""
    parser.add_argument("--rev", action="append", default=[],
                        help="a baseline commit whose experiments to read (repeatable; default HEAD; "
                             "the first is waited on and names the params the runs share)")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between looks at the queue")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"params the runs set besides {free} and the training seeds (make ... SET=...)")
    parser.add_argument("--out", default=out, help="reports/<out>.{md,json}, plots/<out>/")
    parser.add_argument("--now", action="store_true",
                        help="report the runs finished so far, without waiting for the queue (another may still run)")


def report_runs(args: argparse.Namespace, who: str) -> tuple[list[str], dict, list[dict]]:
    """``report_args``' commits, the params set (``--set``, parsed as YAML) and their runs."""
    revs = args.rev or ["HEAD"]
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    return revs, overrides, gather(revs, args.poll, who, args.now)


def gather(revs: list[str], poll: float, who: str, now: bool = False) -> list[dict]:
    """The runs of the commits ``revs``: the first's once its queue is done (``wait``; at
    once with ``now``), then the others' (runs queued from earlier commits, read as they are)."""
    entries = runs(dvc_exp_show(revs[0])) if now else wait(revs[0], poll, who)
    for rev in revs[1:]:
        entries += runs(dvc_exp_show(rev))
    return entries


def git_json(rev: str, path: str) -> dict:
    """A git-tracked JSON file of the run ``rev`` (its reports/), or {} where it has none."""
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else {}


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
