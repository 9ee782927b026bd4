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
from stages.core.probes import paired_accuracy
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
    bottleneck.main(["--sizes", "2,none", "--seeds", "0,1", "--datasets", "mnist"], root=project)
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


def test_the_reference_is_the_same_encoder_from_the_same_weights_without_the_d_wide_layer(tiny):
    control, _ = bottleneck.build({**tiny, "latent_dim": 3}, 10)
    reference, _ = bottleneck.build({**tiny, "latent_dim": bottleneck.NONE}, 10)
    for a, b in zip(control.encoder.state_dict().values(), reference.encoder.state_dict().values()):
        assert torch.equal(a, b)  # one seed, one initial encoder: only the layer after it differs
    x = torch.rand(5, 1, 28, 28)
    assert reference.encode(x).shape == (5, tiny["model"]["hidden"])  # the encoder's dense layer, no d-wide one
    assert isinstance(reference.to_latent, torch.nn.Identity) and reference(x).shape == (5, 10)


@pytest.mark.slow  # trains and probes four times: ~60 s of CPU
def test_every_size_and_seed_is_trained_and_probed_and_kept_with_its_code(report):
    assert set(report["sizes"]) == {"mnist"} and report["epochs"] == 8
    rows = report["rows"]
    assert [(r["latent_dim"], r["seed"]) for r in rows] == [(2, 0), (2, 1), (0, 0), (0, 1)]  # the reference last
    for r in rows:
        # the synthetic classes are a bar's height: a trained classifier beats chance (0.1)
        assert 0.3 < r["own"] <= 1.0, r
        assert all(0.0 <= r[k] <= 1.0 for k in ("logreg", "mlp", "knn5")), r
        assert r["code"] == report["code_now"] and not r["stale"]
    assert "tools/bottleneck_control.py (training)" in report["code_states"][report["code_now"]]
    for row in report["sizes"]["mnist"]:
        group = [r["own"] for r in rows if r["latent_dim"] == row["latent_dim"]]
        assert row["n"] == 2 and row["own"] == pytest.approx(np.mean(group))
        assert row["own_ci"] > 0 or group[0] == group[1]
    # the seed changes the run: two seeds, two different trainings
    assert len({(r["own"], r["mlp"]) for r in rows}) > 1
    # each seed's two runs predicted the same test images: each difference's se over them
    ses = [v for r in rows for v in r["test_images"].values()]
    assert len(ses) == 16 and all(0 <= v < 0.2 for v in ses) and any(v > 0 for v in ses)
    for two, ref in zip(rows[:2], rows[2:]):  # one se per pair of runs, whichever way it is read
        assert two["test_images"] == {k.replace("- 2", "- none"): v for k, v in ref["test_images"].items()}
    cost = next(d for d in report["differences"] if d["size"] == "d = none → 2")
    assert cost["name"] == "end to end accuracy" and cost["test"] == "paired t + test images"
    assert cost["difference"] == pytest.approx(np.mean([a["own"] - b["own"] for a, b in zip(rows[:2], rows[2:])]))


@pytest.mark.slow  # trains and probes four times: ~60 s of CPU
def test_the_markdown_has_a_row_per_size_and_the_sweeps_columns(project, report):
    text = (project / "reports/bottleneck.md").read_text()
    assert "## mnist" in text and "## fashion_mnist" not in text
    rows = [line for line in text.splitlines() if line.startswith(("| 2 |", "| none |"))]
    assert len(rows) == 2
    assert all(line.count("±") == 4 and line.endswith("| – | – | – |") for line in rows)  # no sweep report here


@pytest.mark.slow  # trains and probes four times: ~60 s of CPU
def test_the_control_is_paired_by_seed_with_the_sweeps_per_run_rows(project, report):
    sweep = {"sizes": [{"latent_dim": 2, "n": 3, "ae_mlp": 0.7, "ae_mlp_ci": 0.01, "vae_mlp": 0.69,
                        "vae_mlp_ci": 0.02, "pixels_mlp": 0.89, "pixels_mlp_ci": 0.003}]}
    (project / "reports/sweep_mnist.json").write_text(json.dumps(sweep))
    bottleneck.main(["--reuse"], root=project)  # no training: the markdown from the JSON
    text = (project / "reports/bottleneck.md").read_text()
    assert "| 0.7000 ± 0.0100 | 0.6900 ± 0.0200 | 0.8900 ± 0.0030 |" in text
    assert "| mnist | d = 2 | MLP probe minus pixel MLP |" in text and "| Welch |" in text  # no rows: Welch
    rows = [{"experiment": f"e{s}", "seed": s, "latent_dim": 2, "ae_mlp": 0.7 + s / 100, "pixels_mlp": 0.89,
             "code": "c", "stale": []} for s in (0, 1, 2)]
    (project / "reports/sweep_mnist.json").write_text(json.dumps({**sweep, "rows": rows, "code_states": {"c": {}},
                                                                 "code_now": "c"}))
    bottleneck.main(["--reuse"], root=project)
    saved = json.loads((project / "reports/bottleneck.json").read_text())
    own = {r["seed"]: r["mlp"] for r in saved["rows"] if r["latent_dim"] == 2}
    vs_ae = next(d for d in saved["differences"] if d["name"] == "MLP probe minus AE's codes, MLP probe")
    assert vs_ae["test"] == "paired t" and vs_ae["n"] == 2  # the seeds both have: 0 and 1
    assert vs_ae["difference"] == pytest.approx(np.mean([own[s] - 0.7 - s / 100 for s in (0, 1)]))
    ref = next(d for d in saved["differences"] if d["size"] == "d = none")
    assert ref["name"] == "end to end minus pixel MLP" and ref["test"] == "paired t"
    (project / "reports/sweep_mnist.json").unlink()


def test_a_stopped_study_resumes_and_a_stale_row_is_trained_again(tmp_path, monkeypatch, capsys):
    """The report is written after each seed; a rerun trains only what has no fresh row."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train_ae": {"epochs": 7}}))
    (tmp_path / "data/raw/mnist").mkdir(parents=True)
    trained = []
    labels = np.arange(20) % 10
    half = np.where(np.arange(20) < 10, (labels + 1) % 10, labels)

    def one_run(params, data, classes, d, seed):
        trained.append((d, seed))
        if (d, seed) == (bottleneck.NONE, 1) and len(trained) < 5:
            raise KeyboardInterrupt  # stopped during seed 1
        return ({"latent_dim": d, "seed": seed, "own": 0.9 - d / 100, "logreg": 0.8, "mlp": 0.85 + seed / 100,
                 "knn5": 0.8, "best_epoch": 7}, {k: half if d else labels for k in bottleneck.NUMBERS})

    monkeypatch.setattr(bottleneck, "one_run", one_run)
    monkeypatch.setattr(bottleneck, "processed", lambda *a: ({"test": (None, torch.tensor(labels))}, ["c"] * 10))
    monkeypatch.setattr(bottleneck, "load_params", lambda root: {"train_ae": {"epochs": 7}})
    args = ["--sizes", "2,none", "--seeds", "0,1", "--datasets", "mnist"]
    with pytest.raises(KeyboardInterrupt):
        bottleneck.main(args, root=tmp_path)
    saved = json.loads((tmp_path / "reports/bottleneck.json").read_text())
    assert [(r["latent_dim"], r["seed"]) for r in saved["rows"]] == [(2, 0), (0, 0)]  # seed 0 landed
    assert saved["rows"][0]["test_images"]["own - none"] == pytest.approx(paired_accuracy(labels, half, labels)["se"])
    bottleneck.main(args, root=tmp_path)
    assert trained[-2:] == [(2, 1), (0, 1)]  # seed 0 not trained again
    saved = json.loads((tmp_path / "reports/bottleneck.json").read_text())
    assert len(saved["rows"]) == 4 and not any(r["stale"] for r in saved["rows"])
    state = saved["code_states"][saved["code_now"]]
    state["tools/bottleneck_control.py (training)"] = "0" * 32  # the rows were trained by other code
    (tmp_path / "reports/bottleneck.json").write_text(json.dumps(saved))
    bottleneck.main(["--reuse"], root=tmp_path)
    assert "Stale: 4 of 4 runs" not in (tmp_path / "reports/bottleneck.md").read_text()  # judged at its own code
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {"s": {"deps": [{"path": "stages/x.py", "md5": "X"}]}}}))
    capsys.readouterr()
    bottleneck.main(["--reuse"], root=tmp_path)  # other code in the workspace, no check: still its own
    assert "Stale: 4 of 4 runs" not in (tmp_path / "reports/bottleneck.md").read_text()
    assert "no check carries them" in capsys.readouterr().out
    (tmp_path / "dvc.lock").unlink()
    count = len(trained)
    bottleneck.main(args, root=tmp_path)  # the workspace's code differs from the rows': all four again
    assert len(trained) == count + 4


def test_an_unknown_dataset_is_one_line(project, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bottleneck_control.py"])
    with pytest.raises(SystemExit) as e:
        run(bottleneck.main, ["--datasets", "cifar"], project)
    assert "unknown cifar" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("args", [["--sizes", "2,big"], ["--sizes", "0"], ["--seeds", "0,x"]])
def test_a_bad_size_or_seed_is_one_line(tmp_path, monkeypatch, args):
    monkeypatch.setattr(sys, "argv", ["bottleneck_control.py"])
    with pytest.raises(SystemExit) as e:
        run(bottleneck.main, [*args, "--datasets", "mnist"], tmp_path)
    assert "not a size" in str(e.value) and "--sizes 2,8,none" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "reports").exists()  # nothing written


def test_reuse_without_an_earlier_run_says_to_run_it_first(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bottleneck_control.py"])
    with pytest.raises(SystemExit) as e:
        run(bottleneck.main, ["--reuse"], tmp_path)
    assert "bottleneck.json is missing" in str(e.value) and "run `make bottleneck` first" in str(e.value)
    assert not (tmp_path / "reports").exists()  # nothing written
