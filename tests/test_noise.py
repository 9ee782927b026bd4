"""The noise floor: interval arithmetic, the comparison rule, the seed report's choice of
runs and the sweep with several seeds per size, on hand-made numbers."""
from __future__ import annotations

import importlib.util
import math

import pandas as pd
import pytest
from conftest import REPO

from tools import noise


def tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_against_a_hand_computed_interval():
    s = noise.summary([1.0, 2.0, 3.0])
    # mean 2, sd 1; t(0.975, 2 dof) = 4.302653 (tables); half-width 4.302653 / sqrt(3)
    assert s["n"] == 3 and s["mean"] == 2.0 and s["sd"] == pytest.approx(1.0)
    assert s["half_width"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert s["ci95"] == pytest.approx([2 - 2.484138, 2 + 2.484138], abs=1e-6)
    assert noise.excludes_zero(noise.summary([0.010, 0.012, 0.011]))
    assert not noise.excludes_zero(noise.summary([-0.01, 0.02, 0.005]))
    one = noise.summary([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["sd"])


def test_the_rule_flags_a_change_beyond_the_floor_and_not_one_inside_it():
    sd = 0.01  # floor: 2 * sqrt(2) * 0.01 = 0.0283
    assert noise.floor(sd) == pytest.approx(0.028284, rel=1e-4)
    assert noise.verdict(0.03, sd) == "BEYOND noise"
    assert noise.verdict(-0.03, sd) == "BEYOND noise"
    assert noise.verdict(0.02, sd) == "within noise"
    assert noise.verdict(0.0, sd) == "identical"
    assert noise.verdict(1e-9, 0.0) == "BEYOND noise"  # a metric the seeds never move
    assert noise.verdict(0.5, None) == "no floor"


def test_compare_table_and_verdicts():
    compare = tool("compare")
    floor = {"ae.test_mse": {"sd": 0.0001}, "downstream.ae.mlp_test_acc": {"sd": 0.0036}}
    rows = compare.table({"ae.test_mse": (0.0262, 0.0135), "downstream.ae.mlp_test_acc": (0.7154, 0.7170),
                          "vae.test_kl": (6.18, 6.18), "ood.new": (None, 0.5)}, floor)
    verdicts = {r[0]: r[-1] for r in rows}
    assert verdicts == {"ae.test_mse": "BEYOND noise", "downstream.ae.mlp_test_acc": "within noise",
                        "vae.test_kl": "identical", "ood.new": "only in one"}
    text = compare.render(rows, md=True)
    assert text.splitlines()[0] == "| metric | old | new | change | floor | verdict |"


def exp_entry(name, seed, mse, acc_ae, acc_vae, dataset="fashion_mnist", d=2, state="success", ts="2026-01-01"):
    params = {"latent_dim": d, "data": {"dataset": dataset},
              **{s: {"seed": seed, "lr": 0.008} for s in ("train_classifier", "train_ae", "train_vae")}}
    metrics = {"metrics/train_ae.json": {"ae": {"test_mse": mse}},
               "metrics/train_vae.json": {"vae": {"test_mse": mse + 0.001}},
               "metrics/downstream.json": {"downstream": {"ae": {"mlp_test_acc": acc_ae},
                                                          "vae": {"mlp_test_acc": acc_vae}}}}
    return {"name": name, "state": state, "timestamp": ts, "params": params, "metrics": metrics}


def test_seed_report_takes_runs_that_differ_only_in_their_seeds():
    seeds = tool("seeds")
    entries = [exp_entry("main", 0, 0.0262, 0.7154, 0.7065),
               exp_entry("seed1-vm", 1, 0.0261, 0.7152, 0.7022),
               exp_entry("seed2-laptop", 2, 0.0263, 0.7091, 0.7117),
               exp_entry("seed3-vm", 3, 0.9, 0.1, 0.1, state="failed"),
               exp_entry("mnist", 1, 0.0368, 0.78, 0.76, dataset="mnist"),
               exp_entry("d8", 1, 0.0135, 0.84, 0.83, d=8)]
    entries[1]["params"]["train_ae"]["seed"] = 1  # all three seeds moved together: a seed run
    entries.append(exp_entry("kernel-avx2", 0, 0.0270, 0.70, 0.70, ts="2026-02-01"))  # a rerun of main's params
    odd = exp_entry("mixed", 4, 0.02, 0.7, 0.7)
    odd["params"]["train_vae"]["seed"] = 5  # two different seeds: not a seed run
    rows = seeds.seed_runs(entries + [odd], {})
    assert [(r["experiment"], r["seed"], r["machine"]) for r in rows] == [
        ("main", 0, "(commit's own run)"), ("seed1-vm", 1, "vm"), ("seed2-laptop", 2, "laptop")]
    rep = seeds.report(rows)
    assert rep["metrics"]["ae.test_mse"]["mean"] == pytest.approx(0.0262)
    assert rep["metrics"]["ae.test_mse"]["sd"] == pytest.approx(0.0001)
    diff = rep["differences"]["AE - VAE, MLP probe accuracy"]
    assert diff["values"] == pytest.approx([0.0089, 0.0130, -0.0026])
    assert not diff["excludes_zero"]
    assert rep["differences"]["AE - VAE, test MSE"]["values"] == pytest.approx([-0.001] * 3)
    mnist = seeds.seed_runs(entries, {"data.dataset": "mnist"})
    assert [r["experiment"] for r in mnist] == ["mnist"]


def test_sweep_with_several_seeds_per_size_reports_their_mean_and_interval():
    from tools.sweep import table

    def sweep_entry(name, d, seed, mse):
        e = exp_entry(name, seed, mse, 0.7, 0.7, d=d)
        e["metrics"]["metrics/evaluate.json"] = {"pca": {"test_mse": 2 * mse}}
        e["metrics"]["metrics/train_classifier.json"] = {"classifier": {"test_acc": 0.89, "logreg_test_acc": 0.85}}
        for r in ("ae", "vae", "pca"):
            e["metrics"]["metrics/downstream.json"]["downstream"][r] = {"logreg_test_acc": 0.6, "mlp_test_acc": 0.7}
        return e

    df = table([sweep_entry("main", 2, 0, 0.026), sweep_entry("a", 8, 0, 0.013), sweep_entry("b", 8, 1, 0.015),
                sweep_entry("c", 8, 2, 0.014)])
    assert df["latent_dim"].tolist() == [2, 8] and df["n"].tolist() == [1, 3]
    row = df.set_index("latent_dim").loc[8]
    assert row["ae_mse"] == pytest.approx(0.014) and row["ae_mse_ci"] == pytest.approx(4.302653 * 0.001 / math.sqrt(3),
                                                                                       rel=1e-5)
    assert df.set_index("latent_dim").loc[2, "ae_mse_ci"] == 0.0
    assert isinstance(df, pd.DataFrame)


def test_exercises_report_finds_the_beta_runs_and_the_mnist_run(monkeypatch, tmp_path):
    """The β runs change train_vae.beta alone, the MNIST run dataset and latent_dim alone;
    anything else (a seed run) is not an exercise."""
    from tools import exercises

    def run(name, changes, mse):
        params = {"latent_dim": 2, "data": {"dataset": "fashion_mnist"}, "train_vae": {"beta": 1.0, "seed": 0}}
        for key, value in changes.items():
            section, _, leaf = key.rpartition(".")
            (params[section] if section else params)[leaf] = value
        vae = {"test_mse": mse, "test_kl": 6.0, "test_nelbo": 259.0, "test_iwae_nll": 257.0, "active_units": 2}
        down = {"downstream": {r: {"logreg_test_acc": 0.9, "mlp_test_acc": 0.95} for r in ("ae", "vae", "pca")}
                | {"best_latent_minus_pixels": -0.02}}
        return {"name": name, "state": "success", "rev": name * 8, "params": params,
                "metrics": {"metrics/train_vae.json": {"vae": vae}, "metrics/downstream.json": down,
                            "metrics/train_classifier.json": {"classifier": {"test_acc": 0.98, "logreg_test_acc": 0.92}}}}

    entries = [run("base", {}, 0.0268), run("b4", {"train_vae.beta": 4.0}, 0.0276),
               run("seed1", {"train_vae.seed": 1}, 0.0270), run("m8", {"data.dataset": "mnist", "latent_dim": 8}, 0.01)]
    assert exercises.changed(entries[1], entries[0]) == {"train_vae.beta": 4.0}
    monkeypatch.setattr(exercises, "wait", lambda rev, poll, who: entries)
    import matplotlib.pyplot as plt
    import numpy as np

    png = tmp_path / "stand-in.png"
    plt.imsave(png, np.zeros((8, 8)))
    monkeypatch.setattr(exercises, "cached_png", lambda rev, path, root: png)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/seeds.json").write_text('{"metrics": {"vae.test_mse": {"sd": 0.0001}}}')
    exercises.main(["--poll", "0"], root=tmp_path)
    report = (tmp_path / "reports/exercises.md").read_text()
    assert "| 4 | b4 | 0.02760 (+0.0008, BEYOND noise)" in report and "seed1" not in report
    assert "| AE (8) | 0.9000 | 0.9500 |" in report and (tmp_path / "plots/exercises/beta.png").is_file()


def test_course_report_reads_each_course_run_and_its_epoch_times(monkeypatch, tmp_path):
    """A run counts for a course model when its params are the commit's with that model's
    overrides, nothing else; the table says its latent, parameters and seconds per epoch."""
    import matplotlib.pyplot as plt
    import numpy as np

    from conftest import TINY
    from tools import course

    def run(name, params, mse):
        metrics = {"metrics/train_ae.json": {"ae": {"test_mse": mse}},
                   "metrics/evaluate.json": {"pca": {"test_mse": 0.001}},
                   "metrics/downstream.json": {"downstream": {"ae": {"logreg_test_acc": 0.9, "mlp_test_acc": 0.95}}},
                   "metrics/train_classifier.json": {"classifier": {"test_acc": 0.98, "logreg_test_acc": 0.92}}}
        return {"name": name, "state": "success", "rev": name * 8, "timestamp": name, "params": params,
                "metrics": metrics}

    practice = course.unflat(course.overrides("keras_practice"), TINY)
    other = course.unflat({"train_ae.seed": 3}, practice)
    entries = [run("base", TINY, 0.026), run("course-keras_practice", practice, 0.004), run("seedrun", other, 0.5)]
    monkeypatch.setattr(course, "wait", lambda rev, poll, who: entries)
    monkeypatch.setattr(course, "git_json", lambda rev, path: {"pca": {"dim": 670}, "ae": {"knn": {"k=5": {"test_acc": 0.97}}}})
    log = "train_ae 1/7: train_loss=0.1 val_loss=0.09 * (40.5 s)\ntrain_ae 2/7: train_loss=0.08 val_loss=0.08 * (41.5 s)\n"
    monkeypatch.setattr(course.subprocess, "run", lambda *a, **k: type("Done", (), {"stdout": log, "returncode": 0}))
    png = tmp_path / "stand-in.png"
    plt.imsave(png, np.zeros((8, 8)))
    monkeypatch.setattr(course, "cached_png", lambda rev, path, root, who: png)
    rows = course.main(["--poll", "0"], root=tmp_path)
    assert [r["run"] for r in rows] == ["base", "course-keras_practice"]
    report = (tmp_path / "reports/course.md").read_text()
    assert "| keras_practice | course-keras_practice | MNIST | 28x28, [0, 1], bce | 7x7x64 = 3136 | 74,497 | 41.0 | " \
           "0.00400 | 0.00100 (670) |" in report, report
    assert (tmp_path / "plots/course/reconstructions.png").is_file()
    assert course.EPOCH_LINE.findall("train_ae 1/2: train_loss=0.16116 val_loss=0.16335 * (0.1 s)") == ["0.1"]
