"""Damaged inputs and failed writes: each ends in one line naming the file and the fix,
from the stage's command line (params.run), and leaves nothing half-written."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from stages import train_ae, train_vae
from stages.core import cli, io


def one_line_failure(stage_main, root: Path, monkeypatch, params: dict | None = None) -> str:
    """Run ``stage_main`` as its command line does, in ``root``; return the exit message."""
    monkeypatch.chdir(root)
    if params is not None:
        monkeypatch.setattr(cli, "load_params", lambda root=Path("."): params)
    with pytest.raises(SystemExit) as e:
        cli.run(stage_main, stage=True)
    msg = str(e.value.code)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


def test_params_yaml_that_is_not_yaml(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("latent_dim: 2\nmodel:\n  widths: [16, 32\n")
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    msg = one_line_failure(train_ae.main, tmp_path, monkeypatch)
    assert msg.startswith("train_ae failed: params.yaml is not valid YAML at line ") and "git checkout" in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_npz", "missing_array"])
def test_damaged_processed_split(damage, processed, tiny, tmp_path, monkeypatch):
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "data/processed/train.npz"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not_npz":
        path.write_text("<html>not found</html>")
    else:
        io.save_arrays(path, images=io.load_arrays(path)["images"])  # no labels
    msg = one_line_failure(train_ae.main, tmp_path, monkeypatch, tiny)
    assert msg.startswith("train_ae failed: data/processed/train.npz is damaged (") and \
        "`dvc repro --force preprocess`" in msg, msg
    assert not (tmp_path / "models").exists()


def mountable() -> str | None:
    """Why a test may not mount a filesystem here, or None when it may."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f".mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return None if ok else "this machine refuses `mount -t tmpfs` (no CAP_SYS_ADMIN)"
    except FileNotFoundError:
        return "no `mount` command here"
    finally:
        probe.rmdir()


NOT_MOUNTABLE = mountable()
needs_mount = pytest.mark.skipif(NOT_MOUNTABLE is not None, reason=str(NOT_MOUNTABLE))
OLD = b"the previous file's bytes"


@contextlib.contextmanager
def small_fs(folder: Path, state: str, old_name: str, size_kb: int = 256, free_kb: int = 8):
    """A real tmpfs of ``size_kb`` mounted on ``folder`` holding ``old_name`` (OLD's bytes),
    then ``state``: "full" (filled but for ``free_kb``, so a write gets partway before
    ENOSPC, as on a disk that fills up; the filler is kept) or "read-only" (remounted ro).
    Unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
    try:
        (folder / old_name).write_bytes(OLD)
        if state == "full":
            fs = os.statvfs(folder)
            (folder / "filler").write_bytes(b"\0" * (fs.f_bavail * fs.f_frsize - free_kb * 1024))
            assert os.statvfs(folder).f_bavail * fs.f_frsize == free_kb * 1024
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def left_as_it_was(folder: Path, old_name: str, state: str) -> None:
    assert (folder / old_name).read_bytes() == OLD
    assert sorted(p.name for p in folder.iterdir()) == sorted([old_name, *(["filler"] if state == "full" else [])])


FULL_MESSAGE = "No space left on device; free some disk space and run the stage again"
RO_MESSAGE = ("Read-only file system; remount it read-write (or work in a writable copy) "
              "and run the stage again")
MESSAGES = {"full": FULL_MESSAGE, "read-only": RO_MESSAGE}


def big_figure():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 12))
    ax.imshow(np.random.default_rng(0).random((400, 400)))  # noise: a PNG of ~1 MB
    return fig


# Each writer of io.py with a payload larger than the small filesystem's free space.
WRITERS = {
    "checkpoint.pt": lambda p: io.save_checkpoint(p, {"w": torch.randn(100_000)}, {"kind": "ae"}),
    "arrays.npz": lambda p: io.save_arrays(p, x=np.ones((300, 1000), np.float32)),
    "figure.png": lambda p: io.save_figure(p, big_figure()),
    "report.json": lambda p: io.write_json(p, {f"k{i}": float(i) for i in range(30_000)}),
    "table.csv": lambda p: io.write_csv(p, pd.DataFrame({"a": np.arange(100_000) / 3})),
    "README.md": lambda p: io.write_text(p, "a results line\n" * 30_000),
}


@needs_mount
@pytest.mark.parametrize("state", ["full", "read-only"])
@pytest.mark.parametrize("name", list(WRITERS))
def test_a_real_full_or_read_only_filesystem_is_one_line(name, state, tmp_path):
    """Whatever the library raises (torch's zip writer: RuntimeError over the ENOSPC), one
    WriteError line; the old file keeps its bytes and no temporary file is left."""
    with small_fs(tmp_path / "out", state, name) as folder:
        with pytest.raises(io.WriteError) as e:
            WRITERS[name](folder / name)
        msg = str(e.value)
        assert msg.startswith(f"cannot write {folder / name}: {MESSAGES[state]}"), msg
        assert msg.endswith(f"(any earlier {name} is unchanged)") and "\n" not in msg, msg
        left_as_it_was(folder, name, state)


@needs_mount
@pytest.mark.parametrize("state", ["full", "read-only"])
def test_train_ae_on_a_real_full_or_read_only_disk(state, processed, tiny, tmp_path, monkeypatch):
    """The issue's case: the stage's command line on models/ that is a full (or read-only)
    filesystem ends in one line; every file of the stage keeps its old bytes."""
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    for out in ("metrics/train_ae.json", "reports/train_ae.json"):
        (tmp_path / out).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / out).write_bytes(OLD)
    with small_fs(tmp_path / "models", state, "ae.pt", size_kb=64) as models:
        msg = one_line_failure(train_ae.main, tmp_path, monkeypatch, tiny)
        assert msg == f"train_ae failed: cannot write models/ae.pt: {MESSAGES[state]} " \
            "(any earlier ae.pt is unchanged)", msg
        left_as_it_was(models, "ae.pt", state)
    for out in ("metrics/train_ae.json", "reports/train_ae.json"):
        assert (tmp_path / out).read_bytes() == OLD, out
    assert not (tmp_path / "plots/train_ae/curves.png").exists()
    # DVCLive wrote every epoch as it went, and says the run is not whole
    live = io.read_json(tmp_path / "plots/train_ae/live/metrics.json")
    assert live["partial"] is True and live["step"] == tiny["train_ae"]["epochs"], live


@needs_mount
def test_a_fault_at_a_later_file_keeps_every_old_file_of_the_stage(processed, tiny, tmp_path, monkeypatch):
    """train_ae logs its epochs (plots/train_ae/live), then writes the model, metrics, a
    report, then curves.png: with 48 KB left at plots/train_ae, the live log's nine small
    files (a 4 KB page each on tmpfs) fit and curves.png does not. Every old file stays,
    the model too, not a new model beside old metrics and plots; the live log says partial."""
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models/ae.pt").write_bytes(OLD)
    with small_fs(tmp_path / "plots/train_ae", "full", "reconstructions.png", size_kb=96, free_kb=48) as plots:
        msg = one_line_failure(train_ae.main, tmp_path, monkeypatch, tiny)
        assert msg.startswith(f"train_ae failed: cannot write plots/train_ae/curves.png: {FULL_MESSAGE}"), msg
        assert (plots / "reconstructions.png").read_bytes() == OLD
        assert sorted(p.name for p in plots.iterdir()) == ["filler", "live", "reconstructions.png"]
        assert io.read_json(plots / "live/metrics.json")["partial"] is True
    assert (tmp_path / "models/ae.pt").read_bytes() == OLD
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["ae.pt"]
    assert not (tmp_path / "metrics/train_ae.json").exists()


def test_a_write_error_deep_in_a_library_chain_is_recognised():
    """The cause is found behind the library's own exception types, and an exception with
    no OSError behind it is not mistaken for a full disk."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 26240 vs 26136")
    except RuntimeError as e:
        assert io.os_error(e).errno == errno.ENOSPC
    assert io.os_error(ValueError("a bug, not a disk")) is None


def test_a_bug_inside_a_write_is_not_reported_as_a_disk_problem(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with io.atomic_path(tmp_path / "x.json"):
            1 / 0
    assert list(tmp_path.iterdir()) == []


def test_all_or_nothing_renames_only_when_the_block_succeeds(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    io.write_json(a, {"v": 0})
    with pytest.raises(io.WriteError):
        with io.all_or_nothing():
            io.write_json(a, {"v": 1})
            assert io.read_json(a) == {"v": 0}  # not yet in place
            raise io.WriteError("the second file failed")
    assert io.read_json(a) == {"v": 0} and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with io.all_or_nothing():
        io.write_json(a, {"v": 1})
        io.write_json(b, {"v": 2})
    assert io.read_json(a) == {"v": 1} and io.read_json(b) == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


@needs_mount
@pytest.mark.slow  # ~30 s: a tiny `dvc repro` to train_ae, then a failed and a good rerun
def test_dvc_repro_after_a_full_disk_mid_stage_redoes_the_stage(tmp_path, mirror):
    """Under `dvc repro` DVC removes a stage's outs before it runs it (they stay in its
    cache) and records the stage in dvc.lock only when it succeeds. So a stage that fails
    at its fifth file leaves dvc.lock as it was and `dvc status` naming the stage; once
    there is space, `dvc repro` runs it again and the pipeline is up to date."""
    from test_dvc import make_repo, sh

    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)
    sh(["dvc", "repro", "train_ae"], repo, env)
    lock = (repo / "dvc.lock").read_text()
    with small_fs(repo / "plots/train_ae", "full", "other", size_kb=96, free_kb=48) as plots:  # the live log fits
        failed = sh(["dvc", "repro", "--force", "--single-item", "train_ae"], repo, env, check=False)
        assert failed.returncode != 0
        stage_lines = [line for line in failed.stderr.splitlines() if line.startswith("train_ae failed:")]
        assert stage_lines == [f"train_ae failed: cannot write plots/train_ae/curves.png: {FULL_MESSAGE} "
                               "(any earlier curves.png is unchanged)"], failed.stderr
        assert "Traceback" not in failed.stderr + failed.stdout
        assert sorted(p.name for p in plots.iterdir()) == ["filler", "live", "other"]  # no temporary file
        assert io.read_json(plots / "live/metrics.json")["partial"] is True
    assert (repo / "dvc.lock").read_text() == lock
    assert "train_ae" in sh(["dvc", "status"], repo, env).stdout
    again = sh(["dvc", "repro", "train_ae"], repo, env)
    assert "Running stage 'train_ae'" in again.stdout
    assert "up to date" in sh(["dvc", "status", "train_ae"], repo, env).stdout
    assert (repo / "dvc.lock").read_text() == lock  # the same seed: the same bytes as before


@needs_mount
def test_a_tool_on_a_read_only_filesystem_is_one_line(tmp_path, monkeypatch):
    """The report tools (seeds, sweep, course, exercises, readme) run through cli.run:
    their markdown and JSON land together, or neither does, and the error is one line."""
    from stages.core.cli import run

    with small_fs(tmp_path / "reports", "read-only", "seeds.md") as reports:
        def report():
            io.write_json(tmp_path / "seeds.json", {"n": 3.0})  # lands only with the markdown
            io.write_text(reports / "seeds.md", "| metric | mean |\n")

        report.__module__ = "tools.seeds"  # the name the message gives

        with pytest.raises(SystemExit) as e:
            run(report)
        assert str(e.value.code) == (f"seeds failed: cannot write {reports}/seeds.md: {RO_MESSAGE} "
                                     "(any earlier seeds.md is unchanged)")
        left_as_it_was(reports, "seeds.md", "read-only")
    assert not (tmp_path / "seeds.json").exists()
