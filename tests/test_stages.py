"""Each stage's ``main`` on tiny synthetic data, outputs checked against dvc.yaml.

The pipeline runs once per module (latent_dim 2, then latent_dim 8 as `dvc exp run -S
latent_dim=8` would), each in its own root copied from one download + preprocess; the
tests read what it wrote. Reruns in fresh roots check determinism, divergence and the
pad 2 / symmetric variant.
"""
from __future__ import annotations

import copy
import gzip
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, Reads, idx_bytes, listed_keys

from stages import downstream, evaluate, ood, train_ae, train_classifier, train_vae
from stages.core import builders, cli, training as training_mod
from stages.core.config import InputConfig
from stages.core.data import SPLITS, load_split, slug
from stages.core.inputs import normalize, to_unit
from stages.core.representations import PCARepresentation
from stages.core.io import load_arrays, load_checkpoint, read_json
from stages.core.models import AutoEncoder, from_checkpoint
from stages.core.params import ParamError, read_params_by_stage
from stages.core.training import TrainingError

STAGES = {"train_classifier": train_classifier, "train_ae": train_ae, "train_vae": train_vae,
          "evaluate": evaluate, "downstream": downstream, "ood": ood}
TRAINING = ("train_classifier", "train_ae", "train_vae")
REPRESENTATIONS = ("ae", "vae", "pca")
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def declared(stage: str) -> list[str]:
    """Every ``outs`` and ``metrics`` path of ``stage`` in dvc.yaml."""
    spec = DVC["stages"][stage]
    return [next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", []) + spec.get("metrics", [])]


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@dataclass
class Run:
    root: Path
    params: dict
    metrics: dict[str, dict]  # what each main returned
    written: dict[str, set[str]]  # the files each stage added
    read: dict[str, set[str]]  # the top-level params.yaml keys each stage looked up

    def json(self, stage: str) -> dict:
        """The stage's headline metrics, flattened as `dvc metrics show` names them."""
        return flat(read_json(self.root / "metrics" / f"{stage}.json"))

    def report(self, stage: str) -> dict:
        return read_json(self.root / "reports" / f"{stage}.json")

    def split(self, name: str):
        return load_split(self.root / "data/processed", name)


def run_stages(source: Path, root: Path, params: dict, names) -> Run:
    """Copy the project ``source`` to ``root`` and run ``names`` in order."""
    shutil.copytree(source, root, dirs_exist_ok=True)
    run = Run(root, params, {}, {}, {})
    for name in names:
        before = files(root)
        reads = Reads(params)
        run.metrics[name] = STAGES[name].main(reads, root)
        run.written[name] = files(root) - before
        run.read[name] = reads.keys_read
    return run


def flat(tree: dict, prefix: str = "") -> dict:
    """{"ae": {"test_mse": x}} -> {"ae.test_mse": x}."""
    out = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def live_history(root: Path, stage: str) -> pd.DataFrame:
    """The stage's DVCLive log as one table: ``epoch`` (DVCLive's step), then a column per
    TSV of plots/<stage>/live/plots/metrics/, by name."""
    folder = root / "plots" / stage / "live/plots/metrics"
    tables = [pd.read_csv(tsv, sep="\t") for tsv in sorted(folder.glob("*.tsv"))]
    history = tables[0]
    for table in tables[1:]:
        assert table["step"].tolist() == history["step"].tolist()
        history = history.merge(table, on="step")
    return history.rename(columns={"step": "epoch"})


def with_changes(params: dict, section: str | None = None, **changes) -> dict:
    p = copy.deepcopy(params)
    (p[section] if section else p).update(changes)
    return p


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_globals():
    """seed_everything turns on deterministic algorithms process-wide; undo it after."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)


def learning(params: dict) -> dict:
    """The tiny params with enough optimizer steps for the models to learn the bars, so
    that what a working stage shows can be told from what a broken one does. Two epochs
    of 64 images (10 steps) leave the AE and the VAE at their initial grey (test MSE
    0.159, above the mean image's 0.053), the VAE collapsed (KL 0.04 nats) and the MLP
    probes at chance; three epochs of 16 (51 steps) at lr 0.02 add about 4 s to the module."""
    p = copy.deepcopy(params)
    for stage in TRAINING:
        p[stage].update(epochs=3, batch_size=16, lr=0.02)
    return p


@pytest.fixture(scope="module")
def latent2(processed, tiny, tmp_path_factory) -> Run:
    return run_stages(processed, tmp_path_factory.mktemp("latent2"), learning(tiny), STAGES)


@pytest.fixture(scope="module")
def latent8(latent2, tmp_path_factory) -> Run:
    """`dvc exp run -S latent_dim=8` on top of the latent_dim=2 run: the stages that
    depend on latent_dim rerun, train_classifier's outputs stay."""
    return run_stages(latent2.root, tmp_path_factory.mktemp("latent8"), with_changes(latent2.params, latent_dim=8),
                      ["train_ae", "train_vae", "evaluate", "downstream", "ood"])


@pytest.fixture(params=["latent2", "latent8"])
def any_run(request) -> Run:
    return request.getfixturevalue(request.param)


def assert_finite(metrics: dict) -> None:
    bad = {k: v for k, v in flat(metrics).items() if not math.isfinite(v)}
    assert not bad, bad


def input_blind_mse(images: np.ndarray) -> float:
    """The least MSE on [0, 1] of an output that ignores its input: these images' own mean
    image, off by each pixel's variance. A decoder that learnt nothing cannot go below it."""
    return float((images / 255.0).var(axis=0).mean())


def unit_mse(model: torch.nn.Module, images: np.ndarray) -> float:
    """The model's reconstruction MSE per pixel on [0, 1], fed as its checkpoint says."""
    pre = model.cfg.input
    with torch.no_grad():
        unit = to_unit(model.eval()(normalize(images, pre)), pre)[:, 0].numpy()  # (N, 28, 28)
    assert unit.shape == images.shape
    return float(((unit - images / 255.0) ** 2).mean())


CHANCE = 0.1  # ten balanced classes
PROBE_FLOOR = 3 * CHANCE  # each probe of the learning runs reaches 0.4 or more; one on shuffled labels 0.0-0.1

# Each figure of the latent_dim=2 run: its size in pixels (plots.py's figsize at save_figure's
# 100 dpi; rows_of_images is 150 px a row) and the least share of it a drawn one inks (not
# white). Images fill their figures (0.17 to 0.69 here), and one whose images are missing
# or white inks under 0.05; a chart's axes and lines ink 0.03 to 0.5; a blank figure none.
IMAGES, CHART = 0.1, 0.02
FIGURES = {
    "train_classifier/curves.png": ((960, 360), CHART),  # loss and accuracy
    "train_classifier/confusion.png": ((700, 600), CHART),
    "train_classifier/predictions.png": ((1120, 480), IMAGES),  # 24 images, 8 a row
    "train_ae/curves.png": ((480, 360), CHART),  # its mse is its loss: one panel
    "train_ae/reconstructions.png": ((1200, 300), IMAGES),
    "train_vae/curves.png": ((1920, 360), CHART),  # loss, recon, kl, mse
    "train_vae/reconstructions.png": ((1200, 300), IMAGES),
    "train_vae/samples.png": ((1120, 1280), IMAGES),  # 64 samples, 8 a row
    "train_vae/latent_histograms.png": ((600, 250), CHART),  # one panel per latent dimension, 4 a row
    "evaluate/mse_histogram.png": ((700, 400), CHART),
    "evaluate/reconstructions.png": ((1200, 600), IMAGES),  # the originals and 3 representations
    **{f"evaluate/extremes_{r}.png": ((1200, 600), IMAGES) for r in REPRESENTATIONS},
    **{f"evaluate/latent_{r}.png": ((700, 600), CHART) for r in REPRESENTATIONS},
    "evaluate/interpolation.png": ((1200, 1800), IMAGES),  # 4 class pairs x 3 representations
    "evaluate/anomalies.png": ((1200, 900), IMAGES),  # flagged and reconstructed x 3
    "evaluate/manifold_ae.png": ((800, 800), IMAGES),
    "evaluate/manifold_vae.png": ((800, 800), IMAGES),
    "evaluate/samples_ae_vs_vae.png": ((1200, 300), IMAGES),
    **{f"evaluate/arithmetic_{m}.png": ((1200, 1200), IMAGES) for m in ("ae", "vae")},  # 2 pairs x 4 images
    "downstream/accuracy.png": ((1000, 400), CHART),
    "downstream/confusion.png": ((700, 600), CHART),
    "ood/histograms.png": ((1380, 680), CHART),  # 6 scores, 3 a row
}


def assert_drawn(run: Run, name: str) -> None:
    """plots/``name`` has its size in FIGURES and is not blank."""
    from PIL import Image

    size, ink = FIGURES[name]
    with Image.open(run.root / "plots" / name) as image:
        assert image.size == size, (name, image.size)
        rgb = np.asarray(image.convert("RGB"))
    inked = float((rgb.min(axis=-1) < 250).mean())
    assert inked > ink, (name, inked)


# ----------------------------------------------------------------- outputs vs dvc.yaml
@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_writes_exactly_what_dvc_yaml_declares(stage, latent2):
    outs = declared(stage)
    for out in outs:
        path = latent2.root / out
        assert path.exists(), f"{stage}: dvc.yaml declares {out}, main did not write it"
        if path.is_dir():
            assert any(path.iterdir()), f"{stage}: {out} is empty"
    undeclared = {f for f in latent2.written[stage] if not any(f == o or f.startswith(f"{o}/") for o in outs)}
    assert not undeclared, f"{stage} wrote files dvc.yaml does not track: {sorted(undeclared)}"
    leftovers = [f for f in latent2.written[stage] if Path(f).name.startswith(".") or f.endswith(".tmp")]
    assert not leftovers


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_reads_exactly_the_params_dvc_yaml_lists(stage, latent2):
    """dvc.yaml's ``params`` decide what reruns a stage: a key read but not listed would
    not rerun it when changed, a key listed but not read would rerun it for nothing.
    Key by key: a stage that reads one key of a section lists that key, not the section."""
    listed = {str(p) for p in DVC["stages"][stage].get("params", [])}
    assert latent2.read[stage] == listed_keys(latent2.params, listed)


@pytest.mark.parametrize("stage", list(STAGES))
def test_metrics_json_is_what_main_returned(stage, latent2):
    on_disk, returned = latent2.json(stage), flat(latent2.metrics[stage])
    assert on_disk.keys() == returned.keys()
    for key, value in returned.items():
        assert on_disk[key] == pytest.approx(value, rel=1e-5), key  # rounded to 6 digits


def test_headline_metrics_fit_one_screen(latent2):
    """`dvc metrics show` reads only metrics/: a couple of dozen self-explaining keys, each
    named after what it measures (`ae.test_mse`), the details left to reports/."""
    keys = [k for stage in STAGES for k in latent2.json(stage)]
    assert len(keys) == len(set(keys)) <= 25, keys
    assert {"classifier.test_acc", "ae.test_mse", "vae.test_mse", "pca.test_mse",
            "downstream.ae.mlp_test_acc", "downstream.best_latent_test_acc"} <= set(keys)
    assert not [k for k in keys if "count" in k or "p95" in k or "_val_" in k]
    headline = [m for m in DVC["metrics"] if m.startswith("metrics/")]
    assert sorted(headline) == sorted(f"metrics/{stage}.json" for stage in STAGES)


def test_dvc_plots_columns_exist(latent2):
    """Every column a `plots` definition in dvc.yaml names is in the CSV (or DVCLive TSV) the stages wrote."""
    checked = 0
    for entry in DVC["plots"]:
        if isinstance(entry, str):
            assert (latent2.root / entry).exists(), entry
            continue
        (name, spec), = entry.items()
        if name.startswith("sweep_"):  # the sweep report's, not a stage's (tests/test_dvc.py)
            continue
        for csv, columns in spec["y"].items():
            header = pd.read_csv(latent2.root / csv, nrows=0, sep="\t" if csv.endswith(".tsv") else ",").columns
            wanted = [spec["x"], *([columns] if isinstance(columns, str) else columns)]
            assert set(wanted) <= set(header), f"plot {name}: {csv} lacks {set(wanted) - set(header)}"
            checked += 1
    assert checked >= 9


# ------------------------------------------------------------------------ training stages
def test_classifier_metrics_history_and_confusion(latent2):
    m = latent2.json("train_classifier")
    assert set(m) == {"classifier.test_acc", "classifier.logreg_test_acc"}
    r = latent2.report("train_classifier")["pixels"]
    mlp = r["mlp"]
    assert set(mlp) == {"test_acc", "test_loss", "val_acc", "val_loss", "best_epoch", "epochs_run"}
    assert_finite(mlp)
    assert m["classifier.test_acc"] == mlp["test_acc"]
    assert mlp["test_acc"] >= 0.9 and mlp["val_acc"] >= 0.9  # a bar's height; chance is 0.1
    assert 1 <= mlp["best_epoch"] <= mlp["epochs_run"] <= latent2.params["train_classifier"]["epochs"]
    assert r["dim"] == 784 and m["classifier.logreg_test_acc"] == r["logreg"]["test_acc"] >= 0.9  # a bar's height
    assert r["logreg"]["converged"] and r["logreg"]["C"] in latent2.params["logreg"]["C"]

    history = live_history(latent2.root, "train_classifier")
    assert set(history.columns) == {"epoch", "train_loss", "train_acc", "train_eval_loss", "train_eval_acc",
                                    "val_loss", "val_acc", "lr"}
    assert history["epoch"].tolist() == list(range(1, mlp["epochs_run"] + 1))
    assert history.loc[mlp["best_epoch"] - 1, "val_loss"] == pytest.approx(mlp["val_loss"], rel=1e-5)

    test = latent2.split("test")
    confusion = pd.read_csv(latent2.root / "plots/train_classifier/confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted", "count"]
    assert len(confusion) == len(test.classes) ** 2 and confusion["count"].sum() == len(test.labels)
    per_class = confusion.groupby("actual", sort=False)["count"].sum()
    assert per_class.to_dict() == pd.Series([test.classes[i] for i in test.labels]).value_counts().to_dict()
    assert set(confusion["predicted"]) == set(test.classes)
    diagonal = confusion.loc[confusion["actual"] == confusion["predicted"], "count"].sum()
    assert diagonal / len(test.labels) == pytest.approx(mlp["test_acc"], abs=1e-6)


def test_ae_metrics_and_history(latent2):
    r = latent2.report("train_ae")
    assert set(r) == {"test_loss", "test_mse", "val_loss", "val_mse", "best_epoch", "epochs_run"}
    assert_finite(r)
    assert latent2.json("train_ae") == {"ae.test_mse": r["test_mse"]}
    for s in ("test", "val"):  # well below what ignoring the input gives (0.053)
        assert r[f"{s}_mse"] < 0.9 * input_blind_mse(latent2.split(s).images), (s, r[f"{s}_mse"])
    history = live_history(latent2.root, "train_ae")
    assert set(history.columns) == {"epoch", "train_loss", "train_mse", "train_eval_loss", "train_eval_mse",
                                    "val_loss", "val_mse", "lr"}
    assert history["epoch"].tolist() == list(range(1, r["epochs_run"] + 1))
    assert np.isfinite(history.to_numpy()).all()


def test_vae_metrics_and_history(latent2):
    r = latent2.report("train_vae")
    assert set(r) == {f"{s}_{k}" for s in ("test", "val") for k in ("loss", "recon", "kl", "mse")} | {
        f"test_{k}" for k in ("nelbo", "iwae_nll", "iwae_gain", "iwae_images")} | {
        "best_epoch", "epochs_run", "iwae_k", "active_units", "mu_variance"}
    assert_finite(r)
    assert latent2.json("train_vae") == {"vae.test_mse": r["test_mse"], "vae.test_kl": r["test_kl"],
                                         "vae.test_nelbo": r["test_nelbo"],
                                         "vae.test_iwae_nll": r["test_iwae_nll"], "vae.active_units": r["active_units"]}
    # Active units: the dimensions whose posterior mean varies across the test images.
    model = from_checkpoint(load_checkpoint(latent2.root / "models/vae.pt")).eval()
    with torch.no_grad():
        mu = model.encode(normalize(latent2.split("test").images, model.cfg.input)).numpy().astype(np.float64)
    variance = mu.var(axis=0)
    assert list(r["mu_variance"]) == [f"z{j}" for j in range(latent2.params["latent_dim"])]
    assert list(r["mu_variance"].values()) == pytest.approx(variance.tolist(), rel=1e-4)
    assert r["active_units"] == int((variance > 0.01).sum())
    # It reconstructs from its codes, not from the prior: a collapsed VAE (KL ~0, every unit
    # inactive) decodes the same image whatever the input.
    assert r["test_mse"] < 0.9 * input_blind_mse(latent2.split("test").images), r["test_mse"]
    assert r["test_kl"] > 1.0 and r["active_units"] >= 1
    # On val and test the loss is the negative ELBO (beta = 1, z sampled), in nats.
    assert r["test_loss"] == pytest.approx(r["test_recon"] + r["test_kl"], rel=1e-4)
    # The headline negative ELBO is the one of the IWAE bound's images and draws, beside it.
    assert r["test_nelbo"] == pytest.approx(r["test_iwae_nll"] + r["test_iwae_gain"], rel=1e-5)
    bounds = np.load(latent2.root / "data/eval/vae_test_bounds.npz")
    assert r["test_nelbo"] == pytest.approx(float(bounds["nelbo"].mean()), rel=1e-6)
    # The IWAE bound: positive nats, tighter than the ELBO of the same images and draws.
    assert r["iwae_k"] == 8 and r["test_iwae_images"] == 40
    assert r["test_iwae_nll"] > 0 and r["test_iwae_gain"] > 0
    history = live_history(latent2.root, "train_vae")
    assert set(history.columns) == {"epoch", *(f"{s}_{k}" for s in ("train", "train_eval", "val")
                                               for k in ("loss", "recon", "kl", "mse")), "lr"}
    assert history["epoch"].tolist() == list(range(1, r["epochs_run"] + 1))
    assert np.isfinite(history.to_numpy()).all()


@pytest.mark.parametrize("stage", TRAINING)
def test_live_summary_is_the_last_epoch_and_whole(stage, latent2):
    """What `dvc exp show` reads while a stage trains (DVCLive's metrics.json): the last
    epoch's values and the epoch as step, ``partial`` false once the stage is done."""
    summary = read_json(latent2.root / "plots" / stage / "live/metrics.json")
    history = live_history(latent2.root, stage)
    assert summary == {"partial": False, "step": len(history), **history.iloc[-1].drop("epoch").to_dict()}
    assert not [f for f in latent2.written[stage] if f.endswith(("dvc.yaml", ".html", ".md", "params.yaml"))]


def test_a_stage_that_fails_after_training_leaves_its_live_log_partial(processed, tiny, tmp_path, monkeypatch):
    """Killed or failed after its epochs: no headline metric, and a live log that says partial."""
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "load_params", lambda root=Path("."): tiny)

    def no_figure(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_ae, "save_figure", no_figure)  # after the model, metrics and report
    with pytest.raises(SystemExit):
        cli.run(train_ae.main, stage=True)
    assert not (tmp_path / "metrics/train_ae.json").exists() and not (tmp_path / "models/ae.pt").exists()
    summary = read_json(tmp_path / "plots/train_ae/live/metrics.json")
    assert summary["partial"] is True and summary["step"] == tiny["train_ae"]["epochs"], summary
    assert live_history(tmp_path, "train_ae")["epoch"].tolist() == [1, 2]


@pytest.mark.parametrize("stage, path, kind", [("train_classifier", "models/classifier.pt", "mlp"),
                                               ("train_ae", "models/ae.pt", "ae"),
                                               ("train_vae", "models/vae.pt", "vae")])
def test_checkpoint_rebuilds_its_model(stage, path, kind, latent2):
    checkpoint = load_checkpoint(latent2.root / path)
    assert set(checkpoint) == {"model", "config"}
    assert checkpoint["config"]["kind"] == kind
    model = from_checkpoint(checkpoint)
    if kind == "mlp":
        assert list(model.cfg.hidden) == latent2.params["train_classifier"]["hidden"]
    else:
        assert model.cfg.latent_dim == latent2.params["latent_dim"]
        assert list(model.cfg.widths) == latent2.params["model"]["widths"]


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("stage, model", [("train_classifier", "classifier"), ("train_ae", "ae"),
                                          ("train_vae", "vae")])
def test_same_params_same_model_bytes_and_metrics(stage, model, latent2, processed, tmp_path):
    """The issue's requirement: same params on the CPU -> identical metrics and model bytes,
    here in another root, after other stages ran in this process."""
    again = run_stages(processed, tmp_path, latent2.params, [stage])
    live = [p.relative_to(latent2.root).as_posix() for p in (latent2.root / "plots" / stage / "live").rglob("*.*")]
    assert len(live) >= 8, live  # metrics.json and a TSV per logged value
    for out in (f"models/{model}.pt", f"metrics/{stage}.json", f"reports/{stage}.json", *live):
        assert (again.root / out).read_bytes() == (latent2.root / out).read_bytes(), out


# ---------------------------------------------------------------------------- divergence
def diverging(params: dict) -> dict:
    return with_changes(params, "train_classifier", optimizer="sgd", lr=1e8)


def test_divergent_lr_raises_training_error_and_writes_nothing(processed, tiny, tmp_path):
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    before = files(tmp_path)
    with pytest.raises(TrainingError) as e:
        train_classifier.main(diverging(tiny), tmp_path)
    msg = str(e.value)
    assert "in epoch 1" in msg and "train_classifier.lr" in msg and "1e+08" in msg, msg
    assert not (tmp_path / "models/classifier.pt").exists()
    # no metrics, plots or half-written files either; only DVCLive's log, which says so
    assert files(tmp_path) - before == {"plots/train_classifier/live/metrics.json"}
    assert read_json(tmp_path / "plots/train_classifier/live/metrics.json") == {"partial": True}


def test_divergent_lr_from_the_command_line_exits_with_the_message(processed, tiny, tmp_path, monkeypatch):
    """`python -m stages.train_classifier`: stages.core.cli.run turns it into SystemExit."""
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "load_params", lambda root=Path("."): diverging(tiny))
    with pytest.raises(SystemExit) as e:
        cli.run(train_classifier.main, stage=True)
    msg = str(e.value.code)
    assert msg.startswith("train_classifier failed: ") and "lower train_classifier.lr" in msg, msg
    assert not (tmp_path / "models/classifier.pt").exists()


# ------------------------------------------------------------------ params variants
def test_latent_dim_8_reaches_the_checkpoints(latent8):
    for name in ("ae", "vae"):
        checkpoint = load_checkpoint(latent8.root / f"models/{name}.pt")
        assert checkpoint["config"]["latent_dim"] == 8
        assert checkpoint["model"]["to_latent.weight"].shape[0] == 8
    assert_finite(latent8.report("train_ae"))
    assert_finite(latent8.report("train_vae"))
    assert latent8.report("train_ae")["test_mse"] < 0.9 * input_blind_mse(latent8.split("test").images)


def test_pad_2_symmetric_mse_reports_test_mse_on_the_unit_scale(processed, tiny, tmp_path):
    params = with_changes(tiny, "input", normalize="symmetric", pad=2)
    params["train_ae"]["loss"] = "mse"
    run = run_stages(processed, tmp_path, params, ["train_ae"])
    checkpoint = load_checkpoint(tmp_path / "models/ae.pt")
    assert checkpoint["config"]["input"] == {"normalize": "symmetric", "pad": 2}
    model = from_checkpoint(checkpoint).eval()
    assert isinstance(model, AutoEncoder)

    pre = InputConfig("symmetric", 2)
    test = run.split("test")
    with torch.no_grad():
        x_hat = model(normalize(test.images, pre))  # (N, 1, 32, 32) in [-1, 1]
    unit = to_unit(x_hat, pre)[:, 0].numpy()  # (N, 28, 28) in [0, 1]
    assert unit.shape == test.images.shape
    expected = float(((unit - test.images / 255.0) ** 2).mean())
    assert run.json("train_ae")["ae.test_mse"] == pytest.approx(expected, abs=1e-5)


# ------------------------------------------------------------------------------ evaluate
def test_features_have_one_row_per_image_and_the_processed_labels(any_run):
    d = any_run.params["latent_dim"]
    for name in REPRESENTATIONS:
        arrays = load_arrays(any_run.root / f"data/features/{name}.npz")
        assert set(arrays) == {f"{a}_{s}" for a in "xy" for s in SPLITS}
        for s in SPLITS:
            split = any_run.split(s)
            assert arrays[f"x_{s}"].shape == (len(split.labels), d), (name, s)
            assert np.isfinite(arrays[f"x_{s}"]).all()
            np.testing.assert_array_equal(arrays[f"y_{s}"], split.labels)


def test_features_are_the_checkpoints_codes_and_pca_is_fitted_on_train(latent2):
    model = from_checkpoint(load_checkpoint(latent2.root / "models/ae.pt")).eval()
    test = latent2.split("test")
    with torch.no_grad():
        z = model.encode(normalize(test.images, model.cfg.input)).numpy()
    np.testing.assert_allclose(load_arrays(latent2.root / "data/features/ae.npz")["x_test"], z, atol=1e-5)
    pca = PCARepresentation.fit(latent2.split("train").images, 2)
    np.testing.assert_allclose(load_arrays(latent2.root / "data/features/pca.npz")["x_test"], pca.encode(test.images),
                               atol=1e-5)


def test_per_image_mse_table_and_summary(any_run):
    test = any_run.split("test")
    table = pd.read_csv(any_run.root / "data/eval/per_image_mse.csv")
    assert list(table.columns) == ["index", "label", "class_name", *REPRESENTATIONS]
    assert table["index"].tolist() == list(range(len(test.labels)))
    np.testing.assert_array_equal(table["label"], test.labels)
    assert table["class_name"].tolist() == [test.classes[i] for i in test.labels]

    report = any_run.report("evaluate")["mse"]
    assert set(report) == set(REPRESENTATIONS)
    for r in REPRESENTATIONS:
        m = report[r]
        mse = table[r].to_numpy()
        assert ((mse >= 0) & (mse <= 1)).all()
        lo, median, p95, hi = (m[f"mse_{k}"] for k in ("min", "median", "p95", "max"))
        assert lo <= median <= p95 <= hi
        assert lo <= m["mse_mean"] <= hi
        assert m["mse_mean"] == pytest.approx(mse.mean(), rel=1e-4)
        assert hi == pytest.approx(mse.max(), rel=1e-4)
        for c, name in enumerate(test.classes):
            assert m[f"mse_mean_{slug(name)}"] == pytest.approx(mse[test.labels == c].mean(), rel=1e-4)
        assert len(m) == 5 + len(test.classes)
    assert any_run.json("evaluate")["pca.test_mse"] == report["pca"]["mse_mean"]


def test_evaluate_mse_is_the_training_stages_test_mse(any_run):
    """One unit everywhere: evaluate's mean per-image MSE is train_ae's / train_vae's test_mse."""
    report = any_run.report("evaluate")["mse"]
    assert report["ae"]["mse_mean"] == pytest.approx(any_run.json("train_ae")["ae.test_mse"], rel=1e-4)
    assert report["vae"]["mse_mean"] == pytest.approx(any_run.json("train_vae")["vae.test_mse"], rel=1e-4)


def test_every_figure_of_a_2d_latent_is_drawn_at_its_size(latent2):
    """Every figure the stages drew (preprocess's plots/data aside): the manifold of the AE
    and the VAE, none of PCA's."""
    plots = latent2.root / "plots"
    drawn = {p.relative_to(plots).as_posix() for p in plots.rglob("*.png") if not p.is_relative_to(plots / "data")}
    assert drawn == set(FIGURES)
    for name in FIGURES:
        assert_drawn(latent2, name)


def test_evaluate_figures_for_an_8d_latent(latent8):
    assert not list((latent8.root / "plots/evaluate").glob("manifold_*.png"))
    for name in (*(f"latent_{r}" for r in REPRESENTATIONS), "mse_histogram", "reconstructions", "interpolation"):
        assert_drawn(latent8, f"evaluate/{name}.png")


@pytest.mark.parametrize("arch, changes", [
    ("mnist_2d", {}), ("keras_fashion", {"pad": 2}), ("keras_fashion_upsample", {"pad": 2}),
    ("guide12", {"latent_dim": 128, "normalize": "symmetric"}), ("keras_practice", {"latent_dim": 3136})])
def test_train_ae_builds_each_course_model_by_name(arch, changes, processed, tiny, tmp_path):
    params = with_changes(tiny, latent_dim=changes.get("latent_dim", 2))
    params["model"] = {**params["model"], "arch": arch}
    params["input"] = {"normalize": changes.get("normalize", "unit"), "pad": changes.get("pad", 0)}
    params["train_ae"] = {**params["train_ae"], "loss": "mse"}
    run = run_stages(processed, tmp_path, params, ["train_ae"])
    checkpoint = load_checkpoint(tmp_path / "models/ae.pt")
    assert checkpoint["config"]["arch"] == arch and checkpoint["config"]["latent_dim"] == params["latent_dim"]
    model = from_checkpoint(checkpoint).eval()
    x = normalize(run.split("test").images[:4], model.cfg.input)
    assert model(x).shape == x.shape
    # The reported MSE is the saved model's, and training moved it well below the seeded
    # model the stage started from (0.16-0.19 untrained, 0.06-0.12 after the tiny params'
    # two epochs). Two epochs are too few for some course models to beat the mean image.
    test = run.split("test").images
    mse = run.json("train_ae")["ae.test_mse"]
    assert mse == pytest.approx(unit_mse(model, test), abs=1e-5)
    untrained, _ = builders.autoencoder(params)
    assert mse < 0.8 * unit_mse(untrained, test), (mse, unit_mse(untrained, test))


@pytest.fixture(scope="module")
def spatial(latent2, tiny, tmp_path_factory) -> Run:
    """`dvc exp run -S model.arch=keras_practice -S latent_dim=3136`: the course's 7x7x64 latent."""
    params = with_changes(tiny, latent_dim=7 * 7 * 64)
    params["model"] = {**params["model"], "arch": "keras_practice"}
    return run_stages(latent2.root, tmp_path_factory.mktemp("spatial"), params,
                      ["train_ae", "train_vae", "evaluate", "downstream", "ood"])


def test_a_spatial_latent_goes_through_evaluate_and_downstream_flattened(spatial, capsys):
    n = {s: len(spatial.split(s).labels) for s in SPLITS}
    pca = PCARepresentation.load(spatial.root / "models/pca.npz")
    train = spatial.split("train")
    assert pca.dim == np.linalg.matrix_rank(train.images.reshape(len(train.images), -1) - train.images.mean(0).ravel())
    for name, dim in (("ae", 3136), ("vae", 3136), ("pca", pca.dim)):  # PCA: every component with variance
        features = load_arrays(spatial.root / f"data/features/{name}.npz", [f"x_{s}" for s in SPLITS])
        assert all(features[f"x_{s}"].shape == (n[s], dim) for s in SPLITS), name
        assert spatial.report("downstream")[name]["dim"] == dim
    assert np.abs(pca.decode(pca.encode(train.images)) - train.images / 255.0).max() < 1e-4  # lossless on train
    assert not list((spatial.root / "plots/evaluate").glob("manifold_*.png"))
    assert_finite(spatial.metrics["downstream"])
    assert_finite(spatial.metrics["ood"])


def test_evaluate_says_why_it_draws_no_manifold(spatial, tmp_path, capsys):
    run_stages(spatial.root, tmp_path, spatial.params, ["evaluate"])
    out = capsys.readouterr().out
    assert "manifold_ae.png skipped: the decoded latent plane needs a 2-D latent, this one has 3136 dims" in out
    assert "PCA at all " in out and "components with variance on train is the baseline" in out


def test_latent_arithmetic_shares_and_figures(any_run):
    """Each pair of params.yaml that names two of this dataset's classes (the Fashion-MNIST
    ones here; the MNIST pairs are skipped) gets its share at alpha 0 and 1 for the AE and
    the VAE; the headline is the mean share at alpha 1."""
    report, m = any_run.report("evaluate")["arithmetic"], any_run.json("evaluate")
    test = any_run.split("test")
    for model in ("ae", "vae"):
        pairs = report[model]
        assert list(pairs) == ["Sneaker -> Ankle boot", "T-shirt/top -> Shirt"]
        for name, share in pairs.items():
            a = test.classes.index(name.split(" -> ")[0])
            assert share["images"] == (test.labels == a).sum()
            assert share["alpha_0"] <= 0.1, (model, name)  # its own reconstructions read as class a
        assert m[f"arithmetic.{model}.target_share"] == pytest.approx(np.mean([s["alpha_1"] for s in pairs.values()]))
        assert_drawn(any_run, f"evaluate/arithmetic_{model}.png")
    # Adding the AE's vector turns class-a images into class b (Sneaker -> Ankle boot: all 10,
    # at both latent sizes); the tiny VAE's turns none, so only the AE is held to it.
    assert m["arithmetic.ae.target_share"] >= 0.3
    assert not (any_run.root / "plots/evaluate/arithmetic_pca.png").exists()


def test_target_share_feeds_the_pixel_mlp_as_train_classifier_did(latent2):
    """With the identity representation and v = 0, the share at alpha 0 and 1 is the
    share of class-a test images that train_classifier itself predicted as b (its
    confusion.csv): the decoded images reach the MLP normalized as its own inputs were."""
    from test_evaluation import Pixels

    test = latent2.split("test")
    classifier = from_checkpoint(load_checkpoint(latent2.root / "models/classifier.pt")).eval()
    confusion = pd.read_csv(latent2.root / "plots/train_classifier/confusion.csv")
    identity = evaluate.Evaluated(Pixels(), {}, np.empty(0), np.empty(0), np.empty(0), {})
    assert classifier.cfg.input == InputConfig(**latent2.params["input"])  # the checkpoint feeds itself
    for a, b in ((7, 9), (0, 6), (3, 3)):
        share = evaluate.target_share(identity, test, a, b, np.zeros(28 * 28, np.float32), classifier,
                                      torch.device("cpu"))
        of_a = confusion[confusion["actual"] == test.classes[a]]
        expected = of_a.loc[of_a["predicted"] == test.classes[b], "count"].sum() / of_a["count"].sum()
        assert share["alpha_0"] == share["alpha_1"] == pytest.approx(expected), (a, b)


def test_arithmetic_pairs_of_neither_dataset_are_an_error(latent2, tmp_path):
    params = with_changes(latent2.params, "evaluate", arithmetic_pairs=["1_one->7_seven"])  # MNIST's only
    with pytest.raises(ParamError, match="none of") as e:
        run_stages(latent2.root, tmp_path, params, ["evaluate"])
    assert e.value.key == "evaluate.arithmetic_pairs" and "sneaker" in str(e.value)


# ------------------------------------------------------------------------------------ ood
def test_ood_metrics_report_and_roc(any_run):
    m, r = any_run.json("ood"), any_run.report("ood")
    scores = ["ae_mse", "vae_mse", "pca_mse", "vae_nll", "vae_nll_minus_png", "minus_png"]
    assert sorted(m) == sorted(f"ood.auroc.{s}" for s in scores)
    # conftest draws both datasets from one generator: no score tells them apart beyond
    # chance (40 against 40 images: AUROC sd 0.065; 0.46 to 0.55 here).
    assert all(abs(v - 0.5) < 0.2 for v in m.values()), m
    assert (r["in_distribution"], r["out_of_distribution"]) == ("fashion_mnist", "mnist")
    assert r["images"] == 40 and sorted(r["mean_score"]) == sorted(scores)
    for s in scores:
        roc = pd.read_csv(any_run.root / f"plots/ood/roc/{s}.csv")
        assert list(roc.columns) == ["fpr", "tpr"]
        assert roc.iloc[0].tolist() == [0, 0] and roc.iloc[-1].tolist() == [1, 1]
        assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
        assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(m[f"ood.auroc.{s}"], abs=1e-6)
    noise = r["test_images"]
    assert noise["method"] == "DeLong" and noise["images"] == [40, 40]
    for s in scores:  # 40 against 40 images: an AUROC's se near 0.065 (the note above)
        assert noise["auroc"][s]["auroc"] == pytest.approx(m[f"ood.auroc.{s}"], abs=2e-6)  # 6 digits kept
        assert 0.03 < noise["auroc"][s]["se"] < 0.1, noise["auroc"][s]
    assert set(noise["differences"]) == {"vae_nll_minus_png-vae_nll", "ae_mse-vae_nll", "vae_nll_minus_png-minus_png"}
    for pair, d in noise["differences"].items():
        a, b = pair.split("-")
        assert d["difference"] == pytest.approx(m[f"ood.auroc.{a}"] - m[f"ood.auroc.{b}"], abs=3e-6)


def rerun_ood_with_other_test_images(run: Run, root: Path, images: np.ndarray) -> dict:
    shutil.copytree(run.root, root)
    (root / "data/raw/mnist/t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images), mtime=0))
    return ood.main(run.params, root)["ood"]["auroc"]


def test_ood_of_the_same_images_is_chance_for_every_score(latent2, tmp_path):
    """The other set made of this set's own test images: every score ties, AUROC 0.5."""
    aurocs = rerun_ood_with_other_test_images(latent2, tmp_path / "run", latent2.split("test").images)
    assert aurocs == pytest.approx({score: 0.5 for score in aurocs}, abs=1e-12) and len(aurocs) == 6


def test_ood_scores_rank_plainly_different_images_as_out(latent2, tmp_path):
    """Bright noise as the other set: each representation's error and the VAE's -log p(x)
    put every noise image above every test image (the other dataset is the positive class)."""
    noise = np.random.default_rng(0).integers(150, 256, size=(100, 28, 28), dtype=np.uint8)
    aurocs = rerun_ood_with_other_test_images(latent2, tmp_path / "run", noise)
    assert all(aurocs[s] > 0.95 for s in ("ae_mse", "vae_mse", "pca_mse", "vae_nll")), aurocs
    # Noise does not compress: minus its PNG length ranks it as the *most typical*.
    assert aurocs["minus_png"] < 0.05, aurocs


# ---------------------------------------------------------------------------- downstream
def test_downstream_metrics_and_tables(any_run):
    d = any_run.params["latent_dim"]
    m, report = any_run.json("downstream"), any_run.report("downstream")
    assert report["pixels"] == any_run.report("train_classifier")["pixels"]  # computed once, upstream
    for r in ("pixels", *REPRESENTATIONS):
        assert report[r]["dim"] == (784 if r == "pixels" else d)
        for clf in ("logreg", "mlp"):
            for key in ("val_acc", "test_acc"):
                assert report[r][clf][key] > PROBE_FLOOR, (r, clf, key, report[r][clf][key])
            if r != "pixels":
                assert m[f"downstream.{r}.{clf}_test_acc"] == report[r][clf]["test_acc"]
        if r != "pixels":  # 1-NN and 5-NN on the codes as they are
            assert set(report[r]["knn"]) == {"k=1", "k=5"}
            assert all(acc > PROBE_FLOOR for k in report[r]["knn"].values() for acc in k.values()), report[r]["knn"]
        logreg = report[r]["logreg"]
        assert logreg["C"] in any_run.params["logreg"]["C"]
        assert logreg["converged"] and "n_iter" not in logreg  # the kernel moves the counts, not the fit
        assert report[r]["mlp"]["epochs_run"] <= any_run.params["train_classifier"]["epochs"]

    table = pd.read_csv(any_run.root / "plots/downstream/accuracy.csv")
    assert list(table.columns) == ["model", "representation", "classifier", "val_acc", "test_acc"]
    assert len(table) == 8
    for row in table.itertuples():
        assert row.model == f"{row.representation} {row.classifier}"
        assert row.test_acc == pytest.approx(report[row.representation][row.classifier]["test_acc"], rel=1e-5)
    latent = table[table["representation"] != "pixels"]
    best = latent.loc[latent["val_acc"].idxmax()]
    assert report["best_latent"] == best["model"]
    assert m["downstream.best_latent_test_acc"] == pytest.approx(best["test_acc"])
    pixels = report["pixels"][best["classifier"]]["test_acc"]
    assert m["downstream.best_latent_minus_pixels"] == pytest.approx(best["test_acc"] - pixels, abs=2e-6)

    # every two representations paired image by image: each difference is the two accuracies'
    diffs = report["test_images"]["differences"]
    assert report["test_images"]["n"] == len(any_run.split("test").labels)
    assert set(diffs) == {"ae-vae", "ae-pca", "ae-pixels", "vae-pca", "vae-pixels", "pca-pixels", "best-pixels"}
    for pair, by_classifier in diffs.items():
        a, b = pair.split("-")
        assert set(by_classifier) == ({"logreg", "mlp"} if b == "pixels" and a != "best" else
                                      {best["classifier"]} if a == "best" else {"logreg", "mlp", "k=1", "k=5"})
        for clf, d in by_classifier.items():
            acc = lambda r: best["test_acc"] if r == "best" else (  # noqa: E731
                report[r]["knn"][clf]["test_acc"] if clf.startswith("k=") else report[r][clf]["test_acc"])
            assert d["difference"] == pytest.approx(acc(a) - acc(b), abs=2e-6), (pair, clf)
            assert d["ci95"][0] < d["difference"] < d["ci95"][1] or d["se"] == 0
            assert 0 <= d["mcnemar_p"] <= 1

    test = any_run.split("test")
    confusion = pd.read_csv(any_run.root / "plots/downstream/confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted", "count"] and confusion["count"].sum() == len(test.labels)
    diagonal = confusion.loc[confusion["actual"] == confusion["predicted"], "count"].sum()
    assert diagonal / len(test.labels) == pytest.approx(best["test_acc"])


def test_ctrl_c_during_training_exits_130_with_one_line_and_writes_nothing(processed, tiny, tmp_path, monkeypatch, capsys):
    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    before = files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "load_params", lambda root=Path("."): tiny)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_mod, "evaluate_split", interrupted)  # in the middle of the first epoch's end
    with pytest.raises(SystemExit) as e:
        cli.run(train_ae.main, stage=True)
    assert e.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("train_ae interrupted (Ctrl-C)") and "\n" not in err and "Traceback" not in err, err
    assert files(tmp_path) - before == {"plots/train_ae/live/metrics.json"}  # "partial": true, and nothing else
    assert read_json(tmp_path / "plots/train_ae/live/metrics.json") == {"partial": True}


def test_damaged_checkpoint_stops_evaluate_with_one_line(latent2, tmp_path, monkeypatch):
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    (tmp_path / "models/vae.pt").write_bytes((tmp_path / "models/vae.pt").read_bytes()[:500])
    msg = one_line_failure(evaluate.main, tmp_path, monkeypatch, latent2.params)
    assert msg.startswith("evaluate failed: models/vae.pt is not a checkpoint") and "train_vae" in msg, msg


def test_ood_reads_train_vaes_bounds_of_this_datasets_images(latent2):
    """The IWAE bound of each in-distribution test image is computed once, by train_vae."""
    bounds = load_arrays(latent2.root / "data/eval/vae_test_bounds.npz")
    report = latent2.report("ood")
    n = report["images"]
    assert len(bounds["iwae_nll"]) >= n and int(bounds["k"]) == latent2.params["train_vae"]["iwae_k"]
    assert report["mean_score"]["vae_nll"]["fashion_mnist"] == pytest.approx(float(bounds["iwae_nll"][:n].mean()),
                                                                             rel=1e-5)


def test_a_stage_reports_where_its_seconds_went(processed, tiny, tmp_path, monkeypatch):
    """What `make bench` reads: one JSON line per stage, the epochs inside its own seconds."""
    import json

    from stages.core import timing

    shutil.copytree(processed, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "load_params", lambda root=Path("."): tiny)
    monkeypatch.setenv(timing.TIMES_ENV, str(tmp_path / "times.jsonl"))
    monkeypatch.setattr(timing, "spent", dict.fromkeys(timing.PHASES, 0.0))
    cli.run(train_ae.main, stage=True)
    (line,) = (tmp_path / "times.jsonl").read_text().splitlines()
    times = json.loads(line)
    assert times["stage"] == "train_ae" and set(times) == {"stage", "startup", "main", *timing.PHASES}
    assert 0 < times["epochs"] and sum(times[p] for p in timing.PHASES) <= times["main"]
    assert times["train_eval"] > 0 and times["io"] > 0 and times["figures"] > 0 and times["bound"] == 0
    assert times["startup"] > 0  # from the stages package's first import, long before main


def test_bench_splits_a_stage_and_gives_dvc_the_rest_of_the_wall_time():
    """`make bench`'s table: a stage's wall is its start-up and main; other is main less
    its phases; DVC's own row is the run's wall less every stage's."""
    import importlib.util

    from stages.core import timing

    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks/bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    phases = dict.fromkeys(timing.PHASES, 0.0) | {"epochs": 6.0, "io": 1.0}
    row = bench.split({"stage": "train_ae", "startup": 2.0, "main": 10.0, **phases})
    assert row["wall"] == 12.0 and row["start-up"] == 2.0 and row["other"] == 3.0
    table = bench.split_table({"train_ae": row, "ood": bench.split({"startup": 1.0, "main": 4.0,
                                                                     **dict.fromkeys(timing.PHASES, 0.0)})}, 20.0)
    assert "| DVC itself | 3.0 |" in table and "| **total** | 20.0 | 3.0 | 6.0 |" in table, table
    assert table.endswith("In training epochs: 6.0 s, 30% of the 20.0 s; everything else: 14.0 s."), table


# ------------------------------------------------------ damaged inputs of later stages
from test_faults import one_line_failure  # noqa: E402  (these need this module's runs)


@pytest.mark.parametrize("damage", ["truncated", "not_an_object", "no_pixel_row"])
def test_damaged_report_that_downstream_reads(damage, latent2, tmp_path, monkeypatch):
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "reports/train_classifier.json"
    text = path.read_text()
    path.write_text({"truncated": text[: len(text) // 2], "not_an_object": "[1, 2]", "no_pixel_row": "{}"}[damage])
    before = (tmp_path / "metrics/downstream.json").read_bytes()
    msg = one_line_failure(downstream.main, tmp_path, monkeypatch, latent2.params)
    assert msg.startswith("downstream failed: reports/train_classifier.json") and \
        "`dvc repro --force train_classifier`" in msg, msg
    assert (tmp_path / "metrics/downstream.json").read_bytes() == before


def test_downstream_probes_the_vaes_active_units_beside_its_whole_mu(latent8, tmp_path):
    """Units of mu the encoder barely moves on train (variance <= ACTIVE_VARIANCE) are left out
    of ``vae_active``, probed beside ``vae`` and never chosen as the best latent."""
    from stages.core.models import ACTIVE_VARIANCE

    shutil.copytree(latent8.root, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "data/features/vae.npz"
    with np.load(path) as f:
        arrays = dict(f)
    for key in [k for k in arrays if k.startswith("x_")]:
        arrays[key][:, [1, 4]] *= 0.5 * np.sqrt(ACTIVE_VARIANCE) / arrays["x_train"][:, [1, 4]].std(0)
    np.savez(path, **arrays)
    metrics = downstream.main(latent8.params, tmp_path)["downstream"]
    report = json.loads((tmp_path / "reports/downstream.json").read_text())
    assert report["vae_active_units"]["units"] == [0, 2, 3, 5, 6, 7]
    assert report["vae_active"]["dim"] == 6 and "vae_active" in metrics
    assert "vae-vae_active" in report["test_images"]["differences"]
    assert not report["best_latent"].startswith("vae_active")
    assert len(pd.read_csv(tmp_path / "plots/downstream/accuracy.csv")) == 10


def test_damaged_features_and_pca(latent2, tmp_path, monkeypatch):
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    (tmp_path / "models/pca.npz").write_bytes(b"PK\x03\x04 truncated")
    msg = one_line_failure(ood.main, tmp_path, monkeypatch, latent2.params)
    assert msg.startswith("ood failed: models/pca.npz is damaged") and "`dvc repro --force evaluate`" in msg, msg
    features = tmp_path / "data/features/vae.npz"
    features.write_bytes(features.read_bytes()[:300])
    msg = one_line_failure(downstream.main, tmp_path, monkeypatch, latent2.params)
    assert msg.startswith("downstream failed: data/features/vae.npz is damaged") and "evaluate" in msg, msg


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_missing_or_damaged_pca_axes(damage, latent2, tmp_path, monkeypatch):
    """evaluate takes the PCA baseline from the axes preprocess wrote: without them, one
    line naming the file and the stage that writes it, and evaluate's files as they were."""
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    axes = tmp_path / "data/processed/pca_axes.npz"
    axes.unlink() if damage == "missing" else axes.write_bytes(axes.read_bytes()[:300])
    before = (tmp_path / "models/pca.npz").read_bytes()
    msg = one_line_failure(evaluate.main, tmp_path, monkeypatch, latent2.params)
    fix = {"missing": "is missing; run the stages before this one first", "truncated": "is damaged ("}[damage]
    assert msg.startswith(f"evaluate failed: data/processed/pca_axes.npz {fix}"), msg
    assert damage == "missing" or msg.endswith("rebuild it with `dvc repro --force preprocess`"), msg
    assert (tmp_path / "models/pca.npz").read_bytes() == before


def test_ood_needs_train_vae_to_have_bounded_its_images(latent2, tmp_path, monkeypatch):
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    params = {**latent2.params, "ood": {"images": latent2.params["train_vae"]["iwae_images"] + 1}}
    msg = one_line_failure(ood.main, tmp_path, monkeypatch, params)
    assert "set ood.images <= train_vae.iwae_images" in msg, msg


def test_evaluate_reads_nothing_about_a_model_from_params(latent2, tmp_path):
    """The checkpoints feed themselves: an ``input`` section that says otherwise is not read."""
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    params = yaml.safe_load(yaml.safe_dump(latent2.params))
    del params["input"], params["model"], params["latent_dim"], params["train_vae"]
    assert evaluate.main(params, tmp_path) == latent2.metrics["evaluate"]


def test_anomaly_threshold_is_chosen_on_val_and_counts_the_test_images_above_it(any_run):
    from stages.core.representations import load_representations, per_image_mse

    report = any_run.report("evaluate")
    val, test = any_run.split("val"), any_run.split("test")
    for name, rep in load_representations(any_run.root, "cpu").items():
        a = report["anomalies"][name]
        val_mse = per_image_mse(val.images, rep.decode(rep.encode(val.images)))
        test_mse = per_image_mse(test.images, rep.decode(rep.encode(test.images)))
        threshold = float(np.percentile(val_mse, 99))
        assert a["threshold"] == pytest.approx(threshold, rel=1e-5)  # the report keeps 6 digits
        assert a["flagged"] == int((test_mse > threshold).sum())
        assert a["share"] == pytest.approx(a["flagged"] / len(test_mse))
        assert sum(c["flagged"] for c in a["by_class"].values()) == a["flagged"]
        assert -1 <= report["mse_brightness_r"][name] <= 1
    for name in ("anomalies", "interpolation", "samples_ae_vs_vae"):
        assert_drawn(any_run, f"evaluate/{name}.png")


def test_downstream_gives_the_same_bytes_when_rerun(latent2, tmp_path):
    """The probes' fits run in worker processes on the CPU (probes.probe), whichever
    worker takes which fit: a rerun gives the same bytes."""
    shutil.copytree(latent2.root, tmp_path, dirs_exist_ok=True)
    committed = {p: (latent2.root / p).read_bytes() for p in ("metrics/downstream.json", "reports/downstream.json")}
    downstream.main(latent2.params, tmp_path)
    assert {p: (tmp_path / p).read_bytes() for p in committed} == committed
