"""Damaged inputs and failed writes: each ends in one line naming the file and the fix,
from the stage's command line (params.run), and leaves nothing half-written."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import torch

from conftest import REPO
from stages import train_ae, train_vae
from stages.core import io, params as params_mod


def one_line_failure(stage_main, root: Path, monkeypatch, params: dict | None = None) -> str:
    """Run ``stage_main`` as its command line does, in ``root``; return the exit message."""
    monkeypatch.chdir(root)
    if params is not None:
        monkeypatch.setattr(params_mod, "load_params", lambda root=Path("."): params)
    with pytest.raises(SystemExit) as e:
        params_mod.run(stage_main)
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


def test_disk_full_while_saving_the_model(processed, tiny, tmp_path, monkeypatch):
    """The old model stays, no temporary file is left, and the message says to free space."""
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    model = tmp_path / "models/vae.pt"
    model.parent.mkdir()
    model.write_bytes(b"the previous model")
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    msg = one_line_failure(train_vae.main, tmp_path, monkeypatch, tiny)
    assert msg.startswith("train_vae failed: cannot write models/vae.pt: No space left on device; "
                          "free some disk space"), msg
    assert model.read_bytes() == b"the previous model"
    assert [p.name for p in model.parent.iterdir()] == ["vae.pt"]


def test_disk_full_while_writing_a_report(tmp_path):
    """Every writer goes through the same atomic path: here a JSON report."""
    target = tmp_path / "reports/evaluate.json"
    io.write_json(target, {"a": 1.0})

    class Full:
        def to_csv(self, path, **kwargs):
            Path(path).write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(io.WriteError, match=r"cannot write .*mse\.csv: No space left on device; free some disk"):
        io.write_csv(tmp_path / "reports/mse.csv", Full())
    assert sorted(p.name for p in target.parent.iterdir()) == ["evaluate.json"]
