"""End to end with the real `dvc` CLI on tiny synthetic data, in a temporary git repo.

The full loop (repro, push, clone, pull, an experiment) is slow: `make test-all` and CI
run it; the default suite keeps the quick failing-repro check."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, dataset_dir, shrink

from stages.core.data import MIRROR_ENV, SUMS_ENV
from stages.core.params import load_params

STAGES = ["download", "preprocess", "train_classifier", "train_ae", "train_vae", "evaluate", "downstream", "ood"]
LATENT_STAGES = {"train_ae", "train_vae", "evaluate", "downstream", "ood"}


def make_repo(path: Path, mirror: Path) -> dict:
    """A git + DVC repo with the project's code and dvc.yaml, and the params shrunk."""
    path.mkdir()
    shutil.copytree(REPO / "stages", path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", path)
    (path / "params.yaml").write_text(yaml.safe_dump(shrink(load_params(REPO)), sort_keys=False))
    (path / ".gitignore").write_text("__pycache__/\n")
    env = {**os.environ, MIRROR_ENV: str(mirror), SUMS_ENV: str(mirror / "SHA256SUMS"),
           # `python` in the stage commands must be this interpreter (the venv's).
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "TQDM_DISABLE": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        sh(cmd, path, env)
    # The project's own config (its default remote, the plot page) and plot templates.
    shutil.copy(REPO / ".dvc/config", path / ".dvc/config")
    shutil.copytree(REPO / ".dvc/plots", path / ".dvc/plots")
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "code"]):
        sh(cmd, path, env)
    return env


def sh(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    if cmd[0] == "dvc":
        cmd = [str(Path(sys.executable).parent / "dvc"), *cmd[1:]]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode:
        pytest.fail(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def ran(output: str) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in output}


def assert_dvclive_kept_quiet(repo: Path, env: dict, output: str) -> None:
    """DVCLive inside `dvc repro` / `dvc exp run` (stages/core/training.py): no word of its
    own, no dvc.yaml, report or experiment of its own, nothing staged in git."""
    assert "dvclive" not in output.lower(), output
    assert not sh(["git", "diff", "--name-only", "HEAD", "--", "dvc.yaml"], repo, env).stdout
    assert not sh(["git", "diff", "--cached", "--name-only"], repo, env).stdout
    assert not list(repo.glob("dvclive")) and not list(repo.glob("plots/*/live/*.html"))


@pytest.mark.slow  # ~80 s: 11 stage processes and a dozen dvc commands
def test_repro_push_clone_pull_then_an_experiment_reruns_only_latent_stages(tmp_path, mirror):
    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)

    first = sh(["dvc", "repro"], repo, env)
    assert ran(first.stdout) == set(STAGES)
    for path in ["metrics/downstream.json", "reports/downstream.json", "models/vae.pt", "plots/evaluate/manifold_ae.png"]:
        assert (repo / path).exists(), path
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
    assert ran(sh(["dvc", "repro"], repo, env).stdout) == set()
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "baseline"], repo, env)

    # Share: the default remote of .dvc/config (a folder beside the clone) needs no set-up.
    sh(["dvc", "push"], repo, env)
    assert any((tmp_path / "ae-pipeline-dvc-storage").rglob("*")), "dvc push stored nothing"
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "models/vae.pt").exists()
    sh(["dvc", "pull"], clone, env)
    assert (clone / "models/vae.pt").read_bytes() == (repo / "models/vae.pt").read_bytes()
    assert "up to date" in sh(["dvc", "status"], clone, env).stdout
    assert ran(sh(["dvc", "repro"], clone, env).stdout) == set()  # nothing retrained

    exp = sh(["dvc", "exp", "run", "-S", "latent_dim=8"], repo, env)
    assert ran(exp.stdout) == LATENT_STAGES, exp.stdout
    assert_dvclive_kept_quiet(repo, env, first.stdout + first.stderr + exp.stdout + exp.stderr)
    diff = sh(["dvc", "metrics", "diff", "--md"], repo, env).stdout
    assert "downstream.ae.mlp_test_acc" in diff and "metrics/downstream.json" in diff, diff
    rows = [line for line in diff.splitlines() if line.startswith("| metrics/")]
    assert rows and all(line.count("|") == 6 and " - " not in line for line in rows), diff  # old, new, change
    assert not (repo / "plots/evaluate/manifold_ae.png").exists()  # only drawn for a 2-D latent

    # The sweep's report reads the baseline's run and its experiment through `dvc exp show`.
    report = sh([sys.executable, "-m", "tools.sweep", "--poll", "1"], repo, env)
    mse = pd.read_csv(repo / "plots/sweep/mse.csv")
    assert mse["latent_dim"].tolist() == [2, 8], report.stdout
    assert mse["experiment"].nunique() == 2  # the baseline's run and the experiment, each named
    assert "| 8 |" in (repo / "reports/sweep.md").read_text() and (repo / "plots/sweep/sweep.png").is_file()


def test_every_artifact_is_a_model_a_stage_writes():
    """`dvc artifacts get` fetches an artifact's path from the DVC remote: it must be a
    cached out of a stage, and every model has a name, a type and a description."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    cached = {next(iter(o)) if isinstance(o, dict) else o: o for s in spec["stages"].values() for o in s["outs"]}
    artifacts = spec["artifacts"]
    assert {a["path"] for a in artifacts.values()} == {"models/classifier.pt", "models/ae.pt", "models/vae.pt"}
    for name, artifact in artifacts.items():
        assert isinstance(cached[artifact["path"]], str), f"{name}: {artifact['path']} is not in DVC's cache"
        assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"], name


def test_corrupted_mirror_file_fails_repro_with_a_clear_message(tmp_path, mirror):
    bad = tmp_path / "bad_mirror"
    shutil.copytree(mirror, bad)
    name = "train-labels-idx1-ubyte.gz"
    path = dataset_dir(bad, "fashion_mnist") / name
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1] + b"\x09"))
    repo = tmp_path / "repo"
    env = {**make_repo(repo, mirror), MIRROR_ENV: str(bad)}

    result = sh(["dvc", "repro", "download"], repo, env, check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "download failed:" in message and "Traceback" not in message, message
    assert name in message and "expected" in message and "What to do" in message, message
    assert not list((repo / "data").glob("raw/fashion_mnist/*.gz"))


@pytest.mark.slow
def test_forced_rerun_gives_the_same_lock_file(tmp_path, mirror):
    """Same params on the same CPU: `dvc repro -f` leaves dvc.lock (every hash) unchanged."""
    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)
    sh(["dvc", "repro"], repo, env)
    before = (repo / "dvc.lock").read_text()
    sh(["dvc", "repro", "-f"], repo, env)
    assert (repo / "dvc.lock").read_text() == before


@pytest.mark.slow  # ~2.5 min: a tiny repro and two experiments, each on its own clone
def test_seed_runs_from_two_machines_meet_in_one_report(tmp_path, mirror):
    """Two clones stand for two machines: each runs its seed and `dvc exp push`es it to a
    shared bare git repo (the outputs to the shared DVC remote); a third clone
    `dvc exp pull`s both and the seed report names the machine behind each row."""
    import json

    origin = tmp_path / "origin.git"
    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    sh(["dvc", "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "baseline"], repo, env)
    sh(["git", "remote", "add", "origin", str(origin)], repo, env)
    sh(["git", "push", "-q", "origin", "HEAD:main"], repo, env)
    sh(["dvc", "push", "-q"], repo, env)

    for seed, machine in ((1, "alpha"), (2, "beta")):
        clone = tmp_path / machine
        sh(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path, env)
        sh(["dvc", "pull", "-q"], clone, env)
        sh(["dvc", "exp", "run", "--name", f"seed{seed}-{machine}", "-S", f"seed={seed}"], clone, env)
        sh(["dvc", "exp", "push", "origin", f"seed{seed}-{machine}"], clone, env)

    reporter = tmp_path / "reporter"
    sh(["git", "clone", "-q", "-b", "main", str(origin), str(reporter)], tmp_path, env)
    for name in ("seed1-alpha", "seed2-beta"):
        sh(["dvc", "exp", "pull", "origin", name], reporter, env)
    out = sh([sys.executable, "-m", "tools.seeds", "--poll", "0"], reporter, env)
    report = json.loads((reporter / "reports/seeds.json").read_text())
    assert [(r["seed"], r["machine"]) for r in report["runs"]] == [
        (0, "(commit's own run)"), (1, "alpha"), (2, "beta")], out.stdout
    assert report["metrics"]["ae.test_mse"]["n"] == 3 and report["metrics"]["ae.test_mse"]["sd"] > 0
    assert "seed2-beta (seed 2, beta)" in (reporter / "reports/seeds.md").read_text()
    assert (reporter / "plots/seeds/errors.png").is_file()
    # make compare between two seed runs: the floor of their own configuration, and no flag
    compared = sh([sys.executable, "-m", "tools.compare", "seed1-alpha", "seed2-beta"], reporter, env)
    assert "A's floor: reports/seeds.json, 3 seeds at these params" in compared.stdout, compared.stdout
    assert "BEYOND" not in compared.stdout and "no floor" not in compared.stdout, compared.stdout
    # the artifacts came through the DVC remote too: the reporter can check one out
    sh(["dvc", "exp", "apply", "seed1-alpha"], reporter, env)
    sh(["dvc", "checkout", "models/ae.pt"], reporter, env)
    assert (reporter / "models/ae.pt").is_file()


@pytest.mark.slow  # ~40 s: a tiny repro to train_ae, a push, then a fetch by name from a fresh clone
def test_a_fresh_clone_fetches_the_ae_by_its_artifact_name(tmp_path, mirror):
    """dvc.yaml's `artifacts:` name the three models; once a version of the AE is
    registered (a git tag), `dvc artifacts get <repo> ae` fetches it from the DVC remote
    into a folder of no repo, and it loads."""
    import dvc.api

    from stages.core.models import AutoEncoder, load

    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)
    sh(["dvc", "repro", "train_ae"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "the ae"], repo, env)
    # A version in the model registry: a git tag as `gto register ae` makes one.
    sh(["git", "tag", "-a", "ae@v0.1.0", "-m", "Registering artifact=ae version=v0.1.0"], repo, env)
    sh(["dvc", "push"], repo, env)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "models/ae.pt").exists() and not (clone / ".dvc/cache").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    got = sh(["dvc", "artifacts", "get", str(clone), "ae", "-o", "ae.pt"], elsewhere, env)
    print(f"$ dvc artifacts get {clone} ae -o ae.pt\n{got.stdout}{got.stderr}")
    assert (elsewhere / "ae.pt").read_bytes() == (repo / "models/ae.pt").read_bytes()
    model = load(elsewhere / "ae.pt")  # rebuilt from the config the checkpoint carries
    assert isinstance(model, AutoEncoder) and model.cfg.latent_dim == load_params(repo)["latent_dim"]
    head = sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    assert dvc.api.artifacts_show("ae", repo=str(clone)) == {"rev": head, "path": "models/ae.pt"}


def queued(show: list[dict], name: str) -> tuple[str | None, dict]:
    """The state of experiment ``name`` in `dvc exp show --json` (queued, running, success,
    failed) and its train_classifier live summary (DVCLive's metrics.json)."""
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            if rev.get("name") == name:
                metrics = (rev.get("data") or {}).get("metrics") or {}
                live = metrics.get("plots/train_classifier/live/metrics.json", {}).get("data", {})
                return (exp.get("executor") or {}).get("state"), live
    return None, {}


@pytest.mark.slow  # ~1-2 min: the queued run trains 120 epochs of one image a step
def test_a_queued_experiment_shows_its_epoch_in_exp_show_while_it_runs(tmp_path, mirror):
    """The issue's test of done: `dvc exp show` reads a queued run's DVCLive summary from its
    temporary workspace while it trains (partial, step > 0), then the finished run's; the
    queue's progress line reads its epoch from there."""
    import json
    import time

    from tools.experiments import Progress, runs

    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)
    epochs = 120  # ~0.2 s each on a 2-core CPU: long enough to be seen running
    sh(["dvc", "exp", "run", "--queue", "--name", "slow", "train_classifier",
        "-S", f"train_classifier.epochs={epochs}", "-S", "train_classifier.batch_size=1"], repo, env)
    # The worker outlives `dvc queue start` and keeps its stdout: a file, not a pipe to wait on.
    with open(tmp_path / "worker.log", "w") as log:
        subprocess.run([str(Path(sys.executable).parent / "dvc"), "queue", "start"], cwd=repo, env=env,
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    running, state, live = [], None, {}
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            show = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
            state, live = queued(show, "slow")
            if state == "running" and live.get("step"):
                if not running:
                    table = sh(["dvc", "exp", "show", "--md", "--only-changed"], repo, env).stdout
                    line = Progress("test").line(runs(show))  # what `make ...-report` prints while it waits
                    print(f"while it ran: {json.dumps(live)}\n{table}\n{line}")
                running.append(live)
            if state in ("success", "failed"):
                break
            time.sleep(1)
    finally:
        sh(["dvc", "queue", "stop", "--kill"], repo, env, check=False)
    assert running, f"never seen running with a step: last state {state}, {live}"
    assert running[0]["partial"] is True and 0 < running[0]["step"] < epochs, running[0]
    assert f"running slow (0 s, train_classifier {running[0]['step']}/{epochs})" in line, line
    assert state == "success", (state, sh(["dvc", "queue", "logs", "slow"], repo, env, check=False).stdout[-2000:])
    assert live["partial"] is False and live["step"] == epochs, live
    assert not sh(["git", "status", "--porcelain"], repo, env).stdout  # the workspace is untouched
    assert_dvclive_kept_quiet(repo, env, sh(["dvc", "queue", "logs", "slow"], repo, env).stdout)
