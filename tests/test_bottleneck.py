"""The bottleneck control (tools/bottleneck_control.py) on tiny synthetic data."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import write_dataset
from stages.core import builders
from stages.core.data import DATASETS
from stages.core.cli import run
from tools import bottleneck_control as bottleneck


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny):
    """A project folder: the tiny params and synthetic raw files of both datasets."""
    root = tmp_path_factory.mktemp("bottleneck")
    params = {**tiny, "train_ae": {**tiny["train_ae"], "epochs": 8, "batch_size": 32}}  # enough steps to learn
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for seed, dataset in enumerate(DATASETS):
        write_dataset(root / "data/raw" / dataset, seed)
    return root


@pytest.fixture(scope="module")
def report(project):
    bottleneck.main(["--sizes", "2", "--seeds", "0,1", "--datasets", "mnist"], root=project)
    return json.loads((project / "reports/bottleneck.json").read_text())


def test_the_control_is_the_aes_encoder_with_a_linear_classifier_on_a_d_wide_code(tiny):
    ae, _ = builders.autoencoder({**tiny, "latent_dim": 3})
    model, cfg = bottleneck.build({**tiny, "latent_dim": 3}, 10)
    assert cfg.epochs == tiny["train_ae"]["epochs"]  # the AE's budget
    assert [p.shape for p in model.encoder.parameters()] == [p.shape for p in ae.encoder.parameters()]
    x = torch.rand(5, 1, 28, 28)
    assert model.encode(x).shape == (5, 3) and model(x).shape == (5, 10)
    loss, stats = model.loss(x, torch.arange(5))
    assert loss.requires_grad and set(stats) == {"loss", "acc"}


@pytest.mark.slow  # trains and probes twice: ~30 s of CPU
def test_every_size_and_seed_is_trained_and_probed(report):
    assert set(report["sizes"]) == {"mnist"} and report["epochs"] == 8
    runs = report["runs"]["mnist"]
    assert sorted((r["latent_dim"], r["seed"]) for r in runs) == [(2, 0), (2, 1)]
    for r in runs:
        # the synthetic classes are a bar's height: a trained classifier beats chance (0.1)
        assert 0.3 < r["own"] <= 1.0, r
        assert all(0.0 <= r[k] <= 1.0 for k in ("logreg", "mlp", "knn5")), r
    for row in report["sizes"]["mnist"]:
        group = [r["own"] for r in runs if r["latent_dim"] == row["latent_dim"]]
        assert row["n"] == 2 and row["own"] == pytest.approx(np.mean(group))
        assert row["own_ci"] > 0 or group[0] == group[1]
    # the seed changes the run: two seeds, two different trainings
    assert len({(r["own"], r["mlp"]) for r in runs}) > 1


@pytest.mark.slow  # trains and probes twice: ~30 s of CPU
def test_the_markdown_has_a_row_per_size_and_the_sweeps_columns(project, report):
    text = (project / "reports/bottleneck.md").read_text()
    assert "## mnist" in text and "## fashion_mnist" not in text
    rows = [line for line in text.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1
    assert all(line.count("±") == 4 and line.endswith("| – | – | – |") for line in rows)  # no sweep report here


@pytest.mark.slow  # trains and probes twice: ~30 s of CPU
def test_sweep_numbers_stand_beside_the_control_when_the_sweep_has_that_size(project, report):
    sweep = {"sizes": [{"latent_dim": 2, "n": 3, "ae_mlp": 0.7, "ae_mlp_ci": 0.01, "vae_mlp": 0.69,
                        "vae_mlp_ci": 0.02, "pixels_mlp": 0.89, "pixels_mlp_ci": 0.003}]}
    (project / "reports/sweep_mnist.json").write_text(json.dumps(sweep))
    bottleneck.main(["--reuse"], root=project)  # no training: the markdown from the JSON
    text = (project / "reports/bottleneck.md").read_text()
    assert "| 0.7000 ± 0.0100 | 0.6900 ± 0.0200 | 0.8900 ± 0.0030 |" in text
    (project / "reports/sweep_mnist.json").unlink()


def test_an_unknown_dataset_is_one_line(project, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bottleneck_control.py"])
    with pytest.raises(SystemExit) as e:
        run(bottleneck.main, ["--datasets", "cifar"], project)
    assert "unknown cifar" in str(e.value) and "\n" not in str(e.value)


def test_reuse_without_an_earlier_run_says_to_run_it_first(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bottleneck_control.py"])
    with pytest.raises(SystemExit) as e:
        run(bottleneck.main, ["--reuse"], tmp_path)
    assert "bottleneck.json is missing" in str(e.value) and "run `make bottleneck` first" in str(e.value)
    assert not (tmp_path / "reports").exists()  # nothing written
