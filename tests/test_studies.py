"""The studies (tools/): the seed report's choice of runs, the sweep, the budget, the course and
exercise reports, the queue's progress, on hand-made `dvc exp show` entries."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from tools import noise


def tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_judges_only_against_the_floor_of_its_own_configuration():
    compare = tool("compare")
    config = {"latent_dim": "2", "data.dataset": "fashion_mnist"}
    rep = {"config": {"latent_dim": 2, "data.dataset": "fashion_mnist"}, "runs": [{}] * 5,
           "metrics": {"ae.test_mse": {"sd": 0.0001, "n": 5}, "downstream.ae.mlp_test_acc": {"sd": 0.0036, "n": 5},
                       "pca.test_mse": {"sd": 0.0, "n": 5}}}
    reports = [(Path("reports/seeds.json"), rep)]
    assert noise.report_for(config, reports)[1] is rep
    assert noise.report_for({**config, "latent_dim": "8"}, reports) is None
    rows = {"ae.test_mse": (0.0262, 0.0135), "downstream.ae.mlp_test_acc": (0.7154, 0.7170),
            "pca.test_mse": (0.0456, 0.0456), "vae.test_kl": (6.18, 6.18), "ood.new": (None, 0.5)}
    same = {r[0]: r[-1] for r in compare.table(rows, noise.floors(list(rows), rep, rep))}
    assert same == {"ae.test_mse": "BEYOND noise", "downstream.ae.mlp_test_acc": "within noise",
                    "pca.test_mse": "identical", "vae.test_kl": "identical", "ood.new": "only in one"}
    other = {r[0]: r[-1] for r in compare.table(rows, noise.floors(list(rows), rep, None))}
    assert "BEYOND noise" not in other.values() and other["ae.test_mse"] == "no floor"
    text = compare.render(compare.table(rows, noise.floors(list(rows), rep, rep)), md=True)
    assert text.splitlines()[0] == "| metric | old | new | change | floor | p | verdict |"
    assert compare.seeds_command({**config, "latent_dim": "8"}, config) == (
        'make seeds SET="-S latent_dim=8" TAG=latent_dim8- && make seeds-report '
        'REPORT_ARGS="--set latent_dim=8 --out seeds_latent_dim8"')


def exp_entry(name, seed, mse, acc_ae, acc_vae, dataset="fashion_mnist", d=2, state="success", ts="2026-01-01"):
    params = {"latent_dim": d, "seed": seed, "data": {"dataset": dataset},
              **{s: {"lr": 0.008} for s in ("train_classifier", "train_ae", "train_vae")}}
    metrics = {"metrics/train_ae.json": {"ae": {"test_mse": mse}},
               "metrics/train_vae.json": {"vae": {"test_mse": mse + 0.001}},
               "metrics/downstream.json": {"downstream": {"ae": {"mlp_test_acc": acc_ae},
                                                          "vae": {"mlp_test_acc": acc_vae}}}}
    return {"name": name, "baseline": "main", "state": state, "timestamp": ts, "params": params, "metrics": metrics}


def test_seed_report_takes_runs_that_differ_only_in_their_seeds(monkeypatch):
    """A seed run differs from the baseline in `seed` alone; it is named by its experiment and
    the seed of its params, and the machine is read from a name `make seeds` gave its sweep
    (seeds-<machine>-<i>) or one given by hand (seed<s>-<machine>); DVC's own names have none."""
    seeds = tool("seeds")
    from tools import study

    monkeypatch.setattr(study, "run_json", lambda rev, path: {})  # each run's reports: none
    entries = [exp_entry("main", 0, 0.0262, 0.7154, 0.7065),
               exp_entry("seeds-vm-1", 1, 0.0261, 0.7152, 0.7022),
               exp_entry("seed2-laptop", 2, 0.0263, 0.7091, 0.7117),
               exp_entry("seeds-vm-3", 3, 0.9, 0.1, 0.1, state="failed"),
               exp_entry("hazy-bats", 4, 0.0262, 0.7100, 0.7100),
               exp_entry("mnist", 1, 0.0368, 0.78, 0.76, dataset="mnist"),
               exp_entry("d8", 1, 0.0135, 0.84, 0.83, d=8)]
    entries.append(exp_entry("kernel-avx2", 0, 0.0270, 0.70, 0.70, ts="2026-02-01"))  # a rerun of main's params
    odd = exp_entry("mixed", 5, 0.02, 0.7, 0.7)
    odd["params"]["train_vae"]["lr"] = 0.004  # the seed and something else: not a seed run
    rows = seeds.seed_runs(study.frame(seeds.STUDY, entries + [odd], {}))
    assert [(r["experiment"], r["seed"], r["machine"]) for r in rows] == [
        ("main", 0, "(commit's own run)"), ("seeds-vm-1", 1, "vm"), ("seed2-laptop", 2, "laptop"), ("hazy-bats", 4, None)]
    assert "seeds-vm-1 (seed 1, vm), seed2-laptop (seed 2, laptop), hazy-bats (seed 4)." in \
        seeds.markdown({**seeds.report(rows), "params": {}}, "t").splitlines()[0]
    rows = rows[:3]
    rep = seeds.report(rows)
    assert rep["metrics"]["ae.test_mse"]["mean"] == pytest.approx(0.0262)
    assert rep["metrics"]["ae.test_mse"]["sd"] == pytest.approx(0.0001)
    diff = rep["differences"]["AE - VAE, MLP probe accuracy"]
    assert diff["values"] == pytest.approx([0.0089, 0.0130, -0.0026])
    assert diff["verdict"] == "undecided" and diff["p_holm"] > 0.05
    assert rep["differences"]["AE - VAE, test MSE"]["values"] == pytest.approx([-0.001] * 3)
    mnist = seeds.seed_runs(study.frame(seeds.STUDY, entries, {"data.dataset": "mnist"}))
    assert [r["experiment"] for r in mnist] == ["mnist"]


def test_a_seed_report_is_recomputed_from_its_rows_alone(monkeypatch, tmp_path):
    """`--refresh` rebuilds every summary and verdict of a seed report from the rows its JSON
    keeps, each run's se over the test images (its best latent's classifier) included."""
    seeds = tool("seeds")
    from tools import experiments, study

    entries = [exp_entry(n, s, 0.026 + s / 1e4, 0.71 + s / 1e3, 0.70 - s / 1e3) for n, s in
               (("main", 0), ("seeds-vm-1", 1), ("seeds-vm-2", 2))]
    for e in entries:
        e["rev"], e["params"]["ood"] = e["name"], {"images": 1000}
    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: entries)
    best = {"best_latent": "vae logreg", "test_images": {"differences": {
        "ae-vae": {"mlp": {"se": 0.004}}, "best-pixels": {"logreg": {"se": 0.005}, "mlp": {"se": 1.0}}}}}
    monkeypatch.setattr(study, "run_json", lambda rev, path: best if path.endswith("downstream.json") else {})
    (tmp_path / "reports").mkdir()
    made = seeds.main(["--poll", "0"], root=tmp_path)
    probe = made["differences"]["AE - VAE, MLP probe accuracy"]
    assert probe["test"] == "paired t + test images"
    assert probe["se"] == pytest.approx(math.sqrt(0.002 ** 2 / 3 + 0.004 ** 2))  # differences 0.010, 0.012, 0.014
    kept = json.loads((tmp_path / "reports/seeds.json").read_text())
    assert [r["test_images"] for r in kept["rows"]] == [  # best - pixels: the best latent's classifier's
        {"AE - VAE, MLP probe accuracy": 0.004, "best latent - pixels, same classifier": 0.005}] * 3
    (tmp_path / "reports/seeds.json").write_text(json.dumps({k: kept[k] for k in (
        "rows", "code_states", "code_now", "params", "config")}))  # no summaries, no runs: the rows alone
    seeds.main(["--refresh"], root=tmp_path)
    assert json.loads((tmp_path / "reports/seeds.json").read_text()) == kept


def test_sweep_with_several_seeds_per_size_reports_their_mean_and_interval(monkeypatch):
    from tools import study
    from tools.sweep import markdown, table

    def sweep_entry(name, d, seed, mse, dataset="fashion_mnist"):
        e = exp_entry(name, seed, mse, 0.7 + mse, 0.7, d=d, dataset=dataset)
        e["rev"] = name
        e["metrics"]["metrics/evaluate.json"] = {"pca": {"test_mse": 2 * mse}}
        e["metrics"]["metrics/train_classifier.json"] = {"classifier": {"test_acc": 0.89, "logreg_test_acc": 0.85}}
        e["metrics"]["metrics/train_vae.json"]["vae"]["active_units"] = min(d, 4)
        down = e["metrics"]["metrics/downstream.json"]["downstream"]
        for r in ("ae", "vae", "pca"):
            down[r] = {"logreg_test_acc": 0.6, "mlp_test_acc": 0.7 + (mse if r == "ae" else 0.0)}
        down["best_latent_minus_pixels"] = 0.7 + mse - 0.89
        return e

    knn = {r: {"knn": {"k=5": {"test_acc": 0.65}}} for r in ("ae", "vae", "pca")}
    entries = [sweep_entry("main", 2, 0, 0.026), sweep_entry("a", 8, 0, 0.013), sweep_entry("b", 8, 1, 0.015),
               sweep_entry("c", 8, 2, 0.014), sweep_entry("m", 8, 1, 0.01, dataset="mnist")]
    monkeypatch.setattr(study, "run_json", lambda rev, path: knn)  # each run's reports/downstream.json
    df = table(entries)
    assert df["latent_dim"].tolist() == [2, 8] and df["n"].tolist() == [1, 3]
    row = df.set_index("latent_dim").loc[8]
    t2 = 4.302653  # t(0.975, 2 dof)
    assert row["ae_mse"] == pytest.approx(0.014) and row["ae_mse_ci"] == pytest.approx(t2 * 0.001 / math.sqrt(3), rel=1e-5)
    assert df.set_index("latent_dim").loc[2, "ae_mse_ci"] == 0.0
    # paired per run: AE - VAE MSE is -0.001 in each run, so its interval is a point that excludes 0
    assert row["AE - VAE, test MSE"] == pytest.approx(-0.001) and row["AE - VAE, test MSE_ci"] == pytest.approx(0, abs=1e-12)
    assert row["best latent - pixels, same classifier"] == pytest.approx(0.7 + 0.014 - 0.89)
    assert row["ae_knn5"] == 0.65 and row["vae_active_units"] == 4
    text = markdown(df, "Latent-size sweep, fashion_mnist")
    assert "| 8 | AE - VAE, test MSE | -0.00100 ± 0.00000 | beyond (p < 0.001) |" in text, text
    assert "| 2 | AE - VAE, test MSE | -0.00100 | not judged: one run |" in text, text
    assert "Holm over the 10 rows of this table" in text, text
    assert "| 8 | 0.6000 ± 0.0000 / 0.7140 ± 0.0025 / 0.6500 ± 0.0000 |" in text, text
    mnist = table(entries, {"data.dataset": "mnist"})
    assert mnist["latent_dim"].tolist() == [8] and mnist["experiment"].tolist() == ["m"]


def test_exercises_report_finds_the_beta_runs_and_the_mnist_run(monkeypatch, tmp_path):
    """The β runs change train_vae.beta alone, the MNIST run dataset and latent_dim alone;
    anything else (a seed run) is not an exercise."""
    from tools import exercises, experiments

    def run(name, changes, mse):
        params = {"latent_dim": 2, "seed": 0, "data": {"dataset": "fashion_mnist"}, "train_vae": {"beta": 1.0}}
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
               run("seed1", {"seed": 1}, 0.0270), run("m8", {"data.dataset": "mnist", "latent_dim": 8}, 0.01),
               {**run("b025", {"train_vae.beta": 0.25}, 0.025), "code": {"stages/train_vae.py": "0" * 32}}]
    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: entries)
    import matplotlib.pyplot as plt
    import numpy as np

    png = tmp_path / "stand-in.png"
    plt.imsave(png, np.zeros((8, 8)))
    monkeypatch.setattr(exercises, "run_file", lambda rev, path, root, who: png.read_bytes())
    (tmp_path / "reports").mkdir()
    # a floor at β = 1 only: the β = 4 run is judged "no floor", not against β = 1's seeds
    (tmp_path / "reports/seeds.json").write_text(json.dumps({"config": noise.configuration(
        exercises.flat(entries[0]["params"]), exercises.SEED), "runs": [{}] * 5,
        "metrics": {"vae.test_mse": {"sd": 0.0001, "n": 5}}}))
    exercises.main(["--poll", "0"], root=tmp_path)
    report = (tmp_path / "reports/exercises.md").read_text()
    assert "| 4 | b4 | 0.02760 (+0.0008, no floor)" in report and "seed1" not in report
    assert "| AE (8) | 0.9000 | 0.9500 |" in report and (tmp_path / "plots/exercises/beta.png").is_file()
    # b025 ran at other code than the workspace's (here: none): in no table, named as stale
    assert "| 0.25 |" not in report and "Stale: 1 of 4 runs" in report and "b025 (seed 0)" in report
    saved = json.loads((tmp_path / "reports/exercises.json").read_text())
    kept = {r["experiment"]: r for r in saved["rows"]}  # the commit's run, then the study's runs in its order
    assert list(kept) == ["base", "b025", "b4", "m8"] and kept["m8"]["vae.test_mse"] == 0.01
    assert kept["b025"]["stale"] == ["stages/train_vae.py"] and kept["b4"]["train_vae.beta"] == 4.0
    assert not kept["b4"]["stale"] and kept["b4"]["code"] in saved["code_states"]


def test_course_report_reads_each_course_run_and_its_epoch_times(monkeypatch, tmp_path):
    """A run counts for a course model when its params are the commit's with that model's
    overrides, nothing else; the table says its latent, parameters and seconds per epoch."""
    import matplotlib.pyplot as plt
    import numpy as np

    from conftest import TINY
    from tools import course, experiments

    def run(name, params, mse):
        metrics = {"metrics/train_ae.json": {"ae": {"test_mse": mse}},
                   "metrics/evaluate.json": {"pca": {"test_mse": 0.001}},
                   "metrics/downstream.json": {"downstream": {"ae": {"logreg_test_acc": 0.9, "mlp_test_acc": 0.95}}},
                   "metrics/train_classifier.json": {"classifier": {"test_acc": 0.98, "logreg_test_acc": 0.92}}}
        return {"name": name, "state": "success", "rev": name * 8, "timestamp": name, "params": params,
                "metrics": metrics}

    def unflat(changes, base):
        params = json.loads(json.dumps(base))
        for key, value in changes.items():
            *sections, leaf = key.split(".")
            node = params
            for section in sections:
                node = node[section]
            node[leaf] = value
        return params

    practice = unflat(course.STUDY.runs["course-keras_practice"], TINY)
    other = unflat({"seed": 3}, practice)
    entries = [run("base", TINY, 0.026), run("course-keras_practice", practice, 0.004), run("seedrun", other, 0.5)]
    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: entries)
    monkeypatch.setattr(course, "run_json", lambda rev, path, who: {"pca": {"dim": 670}, "ae": {"knn": {"k=5": {"test_acc": 0.97}}}})
    log = "train_ae 1/7: train_loss=0.1 val_loss=0.09 * (40.5 s)\ntrain_ae 2/7: train_loss=0.08 val_loss=0.08 * (41.5 s)\n"
    monkeypatch.setattr(course.subprocess, "run", lambda *a, **k: type("Done", (), {"stdout": log, "returncode": 0}))
    png = tmp_path / "stand-in.png"
    plt.imsave(png, np.zeros((8, 8)))
    monkeypatch.setattr(course, "run_file", lambda rev, path, root, who: png)
    rows = course.main(["--poll", "0"], root=tmp_path)
    assert [r["experiment"] for r in rows] == ["base", "course-keras_practice"]
    report = (tmp_path / "reports/course.md").read_text()
    saved = json.loads((tmp_path / "reports/course.json").read_text())  # each run a row, with its code state
    assert [(r["model"], r["ae_mse"], r["stale"]) for r in saved["rows"]] == [
        ("backbone", 0.026, []), ("keras_practice", 0.004, [])]
    assert saved["rows"][0]["code"] in saved["code_states"] and saved["rows"][1]["seconds_per_epoch"] == 41.0
    assert "| keras_practice | course-keras_practice | MNIST | 28x28, [0, 1], bce | 7x7x64 = 3136 | 74,497 | 41.0 | " \
           "0.00400 | 0.00100 (670) |" in report, report
    assert (tmp_path / "plots/course/reconstructions.png").is_file()
    assert course.EPOCH_LINE.findall("train_ae 1/2: train_loss=0.16116 val_loss=0.16335 * (0.1 s)") == ["0.1"]


def test_the_queue_says_how_far_it_is(monkeypatch, capsys):
    """Each look at the queue prints runs done of total, the one running and for how long,
    the time elapsed and the rest at the mean time per run so far."""
    from tools import experiments

    looks = iter([{"main": "success", "d2": "running", "d4": "queued", "d8": "queued"},
                  {"d2": "success", "d4": "running", "d8": "queued"},
                  {"d2": "success", "d4": "success", "d8": "running"},
                  {"d2": "success", "d4": "success", "d8": "failed"}])
    clock = iter([0.0, 0.0, 150.0, 300.0, 450.0])  # Progress's start, then one reading per look
    monkeypatch.setattr(experiments.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(experiments.time, "sleep", lambda s: None)
    monkeypatch.setattr(experiments, "dvc_exp_show", lambda rev: [])
    monkeypatch.setattr(experiments, "runs", lambda show: [{"name": n, "state": s} for n, s in next(looks).items()])
    experiments.wait("HEAD", 30, "sweep")
    assert capsys.readouterr().out.splitlines() == [
        "sweep: 0 of 3 runs done, running d2 (0 s), elapsed 0 s, an estimate after the first run",
        "sweep: 1 of 3 runs done, running d4 (0 s), elapsed 2 min 30 s, about 5 min 00 s left (2 min 30 s a run)",
        "sweep: 2 of 3 runs done, running d8 (0 s), elapsed 5 min 00 s, about 2 min 30 s left (2 min 30 s a run)",
        "sweep: 3 of 3 runs done (1 failed) in 7 min 30 s (2 min 30 s a run)"]
    assert experiments.duration(3725) == "1 h 02 min"


def exp_show(running: dict, queued: tuple[str, ...] = ()) -> list[dict]:
    """`dvc exp show --json` for a baseline and its queue: each running experiment's metrics as
    its workspace holds them ({stage: (step, partial)} of the DVCLive summaries; a stage not
    yet run keeps the baseline's finished one)."""
    def data(live: dict) -> dict:
        summaries = {"train_classifier": (24, False), "train_ae": (7, False), "train_vae": (7, False), **live}
        return {"params": {"params.yaml": {"data": {s: {"epochs": 24 if s == "train_classifier" else 7}
                                                    for s in summaries}}},
                "metrics": {f"plots/{s}/live/metrics.json": {"data": {"step": step, "partial": partial, "val_loss": 0.1}}
                            for s, (step, partial) in summaries.items()}}

    exps = [{"executor": {"state": "running", "name": "dvc-task", "local": {"pid": 1, "log": "x"}},
             "revs": [{"rev": n * 20, "name": n, "data": data(live)}]} for n, live in running.items()]
    exps += [{"executor": {"state": "queued"}, "revs": [{"rev": n * 20, "name": n, "data": data({})}]} for n in queued]
    return [{"rev": "a" * 40, "name": "main", "data": data({}), "experiments": exps}]


def test_a_running_run_says_where_it_is_from_its_dvclive_summaries(monkeypatch):
    """Each running run's stage and epoch are what DVCLive wrote in its workspace, as
    `dvc exp show --json` reports it (the partial summary; the epochs from the run's params);
    its time is since a look first saw it running."""
    from tools import experiments

    clock = iter([0.0, 0.0, 125.0])  # Progress's start, then one reading per look
    monkeypatch.setattr(experiments.time, "monotonic", lambda: next(clock))
    progress = experiments.Progress("budget")
    line = progress.line(experiments.runs(exp_show({"d2": {"train_ae": (0, True)}}, queued=("d8",))))
    assert line.startswith("budget: 0 of 2 runs done, running d2 (0 s, train_ae 0/7), elapsed 0 s"), line
    line = progress.line(experiments.runs(exp_show({"d2": {"train_ae": (7, False), "train_vae": (3, True)},
                                                    "d8": {"train_classifier": (5, True)}})))
    assert line.startswith("budget: 0 of 2 runs done, running d2 (2 min 05 s, train_vae 3/7), "
                           "running d8 (0 s, train_classifier 5/24), elapsed 2 min 05 s"), line
    between = experiments.runs(exp_show({"d2": {"train_vae": (7, False)}}))[1]  # evaluate, downstream, ood
    assert between["state"] == "running" and experiments.where(between) == ""
    assert experiments.where({"name": "x", "state": "running"}) == ""


def test_a_run_taken_off_the_queue_is_not_counted_as_done(monkeypatch, capsys):
    from tools import experiments

    looks = iter([{"d2": "running", "d4": "queued", "d8": "queued"},
                  {"d2": "success", "d4": "running"},  # d8: dvc queue remove
                  {"d2": "success", "d4": "success"}])
    clock = iter([0.0, 0.0, 100.0, 200.0])
    monkeypatch.setattr(experiments.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(experiments.time, "sleep", lambda s: None)
    monkeypatch.setattr(experiments, "dvc_exp_show", lambda rev: [])
    monkeypatch.setattr(experiments, "runs", lambda show: [{"name": n, "state": s} for n, s in next(looks).items()])
    experiments.wait("HEAD", 30, "sweep")
    assert capsys.readouterr().out.splitlines()[1:] == [
        "sweep: 1 of 2 runs done, running d4 (0 s), elapsed 1 min 40 s, about 1 min 40 s left (1 min 40 s a run)",
        "sweep: 2 of 2 runs done in 3 min 20 s (1 min 40 s a run)"]


def test_a_damaged_seed_report_is_one_line_naming_it(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/seeds.json").write_text('{"config": {"latent_dim": 2}, "runs": [')  # cut short
    from stages.core.errors import PipelineError
    from tools import study

    with pytest.raises(PipelineError) as e:
        study.seed_reports(tmp_path)
    assert "reports/seeds.json is damaged (not valid JSON" in str(e.value), e.value
    assert str(e.value).endswith("write it again with `make seeds-report`"), e.value  # a tool's, not a stage's


def budget_entry(name, d, epochs, seed, acc, ts="2026-01-01", vae_epochs=None):
    """A run whose AE MLP probe is ``acc``, its pixel MLP 0.89."""
    e = exp_entry(name, seed, 0.03 - acc / 100, acc, acc - 0.01, d=d, ts=ts)
    e["rev"] = name
    e["params"]["train_ae"]["epochs"], e["params"]["train_vae"]["epochs"] = epochs, vae_epochs or epochs
    e["metrics"]["metrics/evaluate.json"] = {"pca": {"test_mse": 0.04}}
    e["metrics"]["metrics/train_classifier.json"] = {"classifier": {"test_acc": 0.89, "logreg_test_acc": 0.85}}
    e["metrics"]["metrics/train_vae.json"]["vae"]["active_units"] = 2
    down = e["metrics"]["metrics/downstream.json"]["downstream"]
    for r in ("ae", "vae", "pca"):
        down[r] = {"logreg_test_acc": 0.6, "mlp_test_acc": {"ae": acc, "vae": acc - 0.01}.get(r, 0.5)}
    down["best_latent_minus_pixels"] = acc - 0.89
    return e


def test_budget_report_judges_each_longer_budget_against_the_shortest(monkeypatch):
    budget = tool("budget")
    entries = [budget_entry("main", 2, 7, 0, 0.71),  # the baseline's own run is a 7-epoch seed
               *(budget_entry(f"e7s{s}", 2, 7, s, acc) for s, acc in ((1, 0.72), (2, 0.70))),
               *(budget_entry(f"e21s{s}", 2, 21, s, acc) for s, acc in ((0, 0.75), (1, 0.76), (2, 0.74))),
               budget_entry("e50s0", 2, 50, 0, 0.715),
               budget_entry("e21s0-old", 2, 21, 0, 0.1, ts="2025-01-01"),  # an older run of (2, 21, 0): dropped
               budget_entry("mixed", 2, 21, 3, 0.9, vae_epochs=7),  # AE and VAE budgets differ: not this study
               budget_entry("d8", 8, 7, 0, 0.8)]
    entries[-1]["params"]["model"] = {"widths": [8]}  # another architecture: not this study
    from tools import study

    monkeypatch.setattr(study, "run_json", lambda rev, path: {"best_epoch": 7})
    df = study.frame(budget.STUDY, entries)
    assert sorted(df["experiment"]) == ["e21s0", "e21s1", "e21s2", "e50s0", "e7s1", "e7s2", "main"]
    summary = study.summarize(df, ["latent_dim", "epochs"])
    changes = {(c["from"], c["to"], c["number"]): c for c in budget.changes(summary)}
    assert sorted({k[:2] for k in changes}) == [(7, 21), (7, 50), (21, 50)]  # the shortest, and the one before
    welch = changes[(7, 21, "best latent - pixels")]
    assert welch["difference"] == pytest.approx(0.04) and welch["test"] == "Welch" and welch["p"] < 0.05
    assert welch["p_holm"] == pytest.approx(min(1, 15 * welch["p"]))  # Holm's first step over the 15 rows
    one = changes[(7, 50, "best latent - pixels")]
    assert one["difference"] == pytest.approx(0.005) and one["verdict"] == "undecided"
    back = changes[(21, 50, "best latent - pixels")]
    assert back["difference"] == pytest.approx(-0.035) and back["test"] == "one run against the seeds"
    text = budget.markdown(summary, budget.changes(summary), {2: noise.summary([0.89, 0.9])}, "t")
    assert "| 2 | 7 → 21 | best latent - pixels | +0.0400 ± 0.0227 | Welch | " in text, text
    assert "| 2 | 7 → 50 | best latent - pixels | +0.0050 ± 0.0497 | one run against the seeds | undecided " in text, text
    assert "Holm over the 15 rows of this table" in text, text
    assert "| 2 | 21 | 3 | -0.1400 ± 0.0248 |" in text, text
    assert "d = 2: 0.8950 ± 0.0635 (2 seeds)" in text, text


def test_budget_report_writes_its_files_and_refuses_a_single_budget(monkeypatch, tmp_path, capsys):
    budget = tool("budget")
    first = [budget_entry("main", 2, 7, 0, 0.71), budget_entry("e7s1", 2, 7, 1, 0.72)]
    earlier = [budget_entry("old", 2, 7, 9, 0.0)] + [budget_entry(f"e21s{s}", 2, 21, s, 0.75 + s / 100)
                                                       for s in (0, 1)]
    from tools import experiments

    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: first)
    monkeypatch.setattr(budget.study, "run_json", lambda rev, path: {"best_epoch": 7})
    with pytest.raises(SystemExit) as e:  # only the 7-epoch runs: nothing to compare
        budget.main(["--poll", "0"], root=tmp_path)
    assert "fewer than two budgets" in str(e.value) and "--rev" in str(e.value)
    assert not (tmp_path / "reports/budget.json").exists()
    monkeypatch.setattr(experiments, "dvc_exp_show", lambda rev: rev)
    monkeypatch.setattr(experiments, "runs", lambda show: earlier)  # --rev older: the 21-epoch runs
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/bottleneck.json").write_text('{"runs": {"fashion_mnist": [')  # cut short
    from stages.core.errors import PipelineError

    with pytest.raises(PipelineError) as e:
        budget.main(["--poll", "0", "--rev", "HEAD", "--rev", "older"], root=tmp_path)
    assert str(e.value).endswith("write it again with `make bottleneck`"), e.value
    (tmp_path / "reports/bottleneck.json").write_text(json.dumps(
        {"runs": {"fashion_mnist": [{"latent_dim": 2, "mlp": m} for m in (0.89, 0.90)]}}))
    summary = budget.main(["--poll", "0", "--rev", "HEAD", "--rev", "older"], root=tmp_path)
    assert summary["epochs"].tolist() == [7, 21] and summary["n"].tolist() == [3, 2]  # seed 9's run counts at 7
    saved = json.loads((tmp_path / "reports/budget.json").read_text())
    assert saved["control"]["2"]["n"] == 2 and len(saved["rows"]) == 5
    assert {c["number"] for c in saved["changes"]} == set(budget.SHOWN)
    assert (tmp_path / "plots/budget/budget.png").is_file()
    assert "| 2 | 7 → 21 | best latent - pixels |" in (tmp_path / "reports/budget.md").read_text()


def test_budget_takes_the_params_own_epochs_from_the_committed_sweep(monkeypatch, tmp_path):
    """The 7-epoch row at a size the committed sweep has is the sweep's (its seeds), not the
    baseline commit's single run; a size the sweep lacks keeps its own runs."""
    budget = tool("budget")
    from tools import experiments

    runs = [budget_entry("main", 2, 7, 0, 0.71), budget_entry("d8e7", 8, 7, 0, 0.80),
            *(budget_entry(f"e21s{s}", d, 21, s, 0.75 + s / 100) for d in (2, 8) for s in (0, 1, 2))]
    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: runs)
    monkeypatch.setattr(budget.study, "run_json", lambda rev, path: {"best_epoch": 21})
    (tmp_path / "reports").mkdir()
    swept = noise.summary([0.71 - 0.89, 0.72 - 0.89, 0.70 - 0.89])
    (tmp_path / "reports/sweep.json").write_text(json.dumps({"dataset": "fashion_mnist", "params": {}, "sizes": [
        {"latent_dim": 2, "n": 3, "best_minus_pixels": swept["mean"], "best_minus_pixels_ci": swept["half_width"],
         "ae_mlp": 0.71, "ae_mlp_ci": 0.02, "pixels_mlp": 0.89, "pixels_mlp_ci": 0.0}],
        "runs": {"2": "ready-keek squat-rant heigh-coos"}}))
    summary = budget.main(["--poll", "0"], root=tmp_path).set_index(["latent_dim", "epochs"])
    assert summary.loc[(2, 7), "n"] == 3 and summary.loc[(2, 7), "experiment"] == "ready-keek squat-rant heigh-coos"
    assert math.isnan(summary.loc[(2, 7), "ae_mse"])  # the sweep's row lacks it: not judged, not invented
    assert summary.loc[(8, 7), "n"] == 1 and summary.loc[(8, 7), "experiment"] == "d8e7"
    saved = json.loads((tmp_path / "reports/budget.json").read_text())
    assert saved["from_sweep"] == [2]
    change = next(c for c in saved["changes"] if (c["latent_dim"], c["to"], c["number"]) == (2, 21, "best latent - pixels"))
    own = noise.summary([0.75 - 0.89, 0.76 - 0.89, 0.77 - 0.89])
    assert change["difference"] == pytest.approx(own["mean"] - swept["mean"])
    assert change["half_width"] == pytest.approx(noise.welch_test(swept, own)["half_width"], rel=1e-9)
    text = (tmp_path / "reports/budget.md").read_text()
    assert "The 7-epoch rows at d = 2 are the committed latent-size sweep's (reports/sweep.json)" in text, text


def sweep_part(names, code, ts):
    """MNIST sweep runs ``names`` (d<size>s<seed>) run at ``code`` (stages/b.py's md5) at time ``ts``;
    the AE's MLP probe 0.9 + seed / 1000, the AE - VAE difference 0.01 + seed / 1000."""
    runs = []
    for name in names:
        d, seed = (int(x) for x in name[1:].split("s"))
        e = budget_entry(name, d, 7, seed, 0.9 + seed / 1000, ts=ts)
        e["params"]["data"]["dataset"] = "mnist"
        e["metrics"]["metrics/downstream.json"]["downstream"]["vae"]["mlp_test_acc"] -= seed / 1000
        e["code"] = {"stages/a.py": "A", "stages/b.py": code}
        runs.append(e)
    return runs


def lock(root, b: str) -> None:
    """A dvc.lock whose stages' code is stages/a.py "A" and stages/b.py ``b``."""
    deps = lambda paths: [{"path": p, "md5": m} for p, m in paths.items()]  # noqa: E731
    (root / "dvc.lock").write_text(json.dumps({"schema": "2.0", "stages": {
        "one": {"deps": deps({"stages/a.py": "A", "data/raw": "x.dir"})}, "two": {"deps": deps({"stages/b.py": b})}}}))


def test_a_sweep_in_parts_keeps_its_rows_and_leaves_out_the_stale(monkeypatch, tmp_path, capsys):
    """The report keeps every run row by row with its code; a later report merges them with the
    new runs (the newer per size and seed) and tabulates only the rows run at the workspace's
    code (dvc.lock), naming the stale ones; each run's se over the test images joins the seeds'."""
    sweep = tool("sweep")
    from tools import experiments

    deps = {"stages/b.py": {"hash": "B"}, "data/raw": {"hash": "x.dir"}}
    shown = [{"rev": "a" * 40, "name": "main", "data": {"deps": deps}}]
    assert experiments.runs(shown)[0]["code"] == {"stages/b.py": "B"}  # a run's code: its deps under stages/
    looks = []
    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: looks.pop(0))
    images = lambda rev: 0.002 + 0.001 * int(rev[-1])  # noqa: E731 (the seed's)
    monkeypatch.setattr(sweep.study, "run_json", lambda rev, path: {"test_images": {"differences": {
        "ae-vae": {"mlp": {"se": images(rev)}}}}} if path.endswith("downstream.json") else {})
    (tmp_path / "reports").mkdir()
    lock(tmp_path, "B")
    args = ["--poll", "0", "--set", "data.dataset=mnist", "--out", "sweep_mnist"]
    looks.append(sweep_part(["d2s0", "d2s1", "d2s2", "d4s0", "d4s1"], "B", "2026-01-01"))
    first = sweep.main(args, root=tmp_path)
    saved = json.loads((tmp_path / "reports/sweep_mnist.json").read_text())
    row = saved["rows"][0]
    assert (row["experiment"], row["seed"], row["latent_dim"], row["stale"]) == ("d2s0", 0, 2, [])
    assert row["test_images"] == {"AE - VAE, MLP probe accuracy": 0.002}
    assert saved["code_states"][row["code"]] == {"stages/a.py": "A", "stages/b.py": "B"}
    assert saved["code_now"] == row["code"]
    assert row["AE - VAE, MLP probe accuracy"] == pytest.approx(0.01) and row["ae_mlp"] == pytest.approx(0.9)
    # d = 2, AE - VAE MLP: the seeds' se sd(0.010, 0.011, 0.012) / sqrt 3, the runs' se 0.002, 0.003, 0.004
    d2 = next(d for d in saved["differences"] if (d["latent_dim"], d["name"]) == (2, "AE - VAE, MLP probe accuracy"))
    assert d2["test"] == "paired t + test images" and d2["se"] == pytest.approx(
        math.sqrt(0.001 ** 2 / 3 + (0.002 ** 2 + 0.003 ** 2 + 0.004 ** 2) / 3), rel=1e-9)

    looks.append(sweep_part(["d2s0"], "B", "2026-01-01"))  # the baseline's own run alone: the rest from the JSON
    pd.testing.assert_frame_equal(sweep.main(args, root=tmp_path), first, check_like=True)

    lock(tmp_path, "B2")  # stages/b.py changed: every kept row is stale, the new runs are fresh
    looks.append(sweep_part(["d2s0", "d8s0"], "B2", "2026-02-01"))
    df = sweep.main(args, root=tmp_path)
    assert df["latent_dim"].tolist() == [2, 8] and df["n"].tolist() == [1, 1]
    saved = json.loads((tmp_path / "reports/sweep_mnist.json").read_text())
    assert [(r["experiment"], r["stale"]) for r in saved["rows"]] == [
        ("d2s0", []), ("d2s1", ["stages/b.py"]), ("d2s2", ["stages/b.py"]), ("d4s0", ["stages/b.py"]),
        ("d4s1", ["stages/b.py"]), ("d8s0", [])]
    assert len(saved["code_states"]) == 2 and saved["sizes"][0]["n"] == 1
    text = (tmp_path / "reports/sweep_mnist.md").read_text()
    assert "Stale: 4 of 6 runs ran at other code than the workspace's dvc.lock (stages/b.py): d2s1 (seed 1); " \
           "d2s2 (seed 2); d4s0 (seed 0); d4s1 (seed 1). No table" in text, text
    assert sweep.main(["--reuse", "--out", "sweep_mnist"], root=tmp_path)["n"].tolist() == [1, 1]
    assert (tmp_path / "reports/sweep_mnist.md").read_text() == text  # the JSON alone: the same report

    looks.append(sweep_part(["d2s0"], "B2", "2026-02-01"))  # other params: the kept rows are left out
    capsys.readouterr()
    assert sweep.main(["--poll", "0", "--out", "sweep_mnist"], root=tmp_path)["n"].tolist() == [1]
    assert "its rows are left out" in capsys.readouterr().out


def test_queue_skips_the_seeds_whose_fresh_row_the_report_keeps(monkeypatch, tmp_path, capsys):
    """`--queue` of a study queues each grid point's seeds less those whose row, run at the
    workspace's code, the committed report already keeps; a stale row is queued again."""
    from tools import experiments, study, sweep

    queued = []
    monkeypatch.setattr(experiments, "queue", lambda runs, jobs: queued.append(runs))
    runs = sweep_part(["d2s0", "d2s1", "d4s0", "d8s1"], "B", "t")
    monkeypatch.setattr(experiments, "wait", lambda rev, poll, who: runs)
    monkeypatch.setattr(study, "run_json", lambda rev, path: {})
    (tmp_path / "reports").mkdir()
    lock(tmp_path, "B")
    sweep.main(["--poll", "0", "--set", "data.dataset=mnist"], root=tmp_path)
    kept = json.loads((tmp_path / "reports/sweep.json").read_text())
    kept["code_states"]["old"] = {"stages/a.py": "A", "stages/b.py": "B0"}
    kept["rows"][-1]["code"] = "old"  # d = 8, seed 1: run at other code
    (tmp_path / "reports/sweep.json").write_text(json.dumps(kept))
    capsys.readouterr()
    grid = ["--grid", "latent_dim=2,4,8,16", "--seeds", "0,1"]
    sweep.main(["--queue", *grid, "-S", "data.dataset=mnist"], root=tmp_path)
    assert queued.pop() == [(None, {"latent_dim": "4", "data.dataset": "mnist", "seed": 1}),
                            (None, {"latent_dim": "8", "data.dataset": "mnist", "seed": "range(0,2)"}),
                            (None, {"latent_dim": "16", "data.dataset": "mnist", "seed": "range(0,2)"})]
    assert capsys.readouterr().out.splitlines() == [
        "sweep: {'latent_dim': '2'} seeds [0, 1]: fresh in reports/sweep.json, not queued",
        "sweep: {'latent_dim': '4'} seeds [0]: fresh in reports/sweep.json, not queued"]
    sweep.main(["--queue", "--grid", "latent_dim=2", "--seeds", "0,1"], root=tmp_path)  # other params: all queued
    assert queued.pop() == [(None, {"latent_dim": "2", "seed": "range(0,2)"})]


def test_a_study_queues_its_grid_times_its_seeds_or_its_named_runs(monkeypatch, tmp_path):
    """`make sweep/seeds/budget/exercises` are `python -m tools.<study> --queue`: one `dvc exp
    run --queue` per grid point, its seeds one Hydra sweep of `seed`, or one per named run."""
    from tools import budget, experiments, exercises, seeds, study, sweep

    queued = []
    monkeypatch.setattr(experiments, "queue", lambda runs, jobs: queued.append((runs, jobs)))

    def queue(module, *argv):
        args = study.arguments(module.STUDY, "doc").parse_args(["--queue", *argv])
        assert study.start(module.STUDY, args, tmp_path) is None  # no stored rows there: every seed queued
        return queued.pop()

    runs, jobs = queue(budget, "--grid", "epochs=21", "--seeds", "0,1", "-S", "data.dataset=mnist", "--jobs", "2")
    assert jobs == 2 and runs == [
        (None, {"latent_dim": d, "train_ae.epochs": "21", "train_vae.epochs": "21", "data.dataset": "mnist",
                "seed": "range(0,2)"}) for d in (2, 8)]
    assert queue(sweep, "--seeds", "0")[0] == [(None, {"latent_dim": d, "seed": 0}) for d in (2, 4, 8, 16, 32)]
    runs, _ = queue(seeds, "--seeds", "0 2 5", "--name", "mnist-seeds-vm")
    assert runs == [("mnist-seeds-vm", {"seed": "0,2,5"})]
    assert queue(seeds, "--name", "seeds-vm", "--grid", "latent_dim=8")[0] == [("seeds-vm-8", {"latent_dim": "8",
                                                                                               "seed": "range(1,5)"})]
    assert queue(exercises, "beta-4")[0] == [("beta-4", {"train_vae.beta": 4})]
    assert [name for name, _ in queue(exercises)[0]] == ["beta-0.25", "beta-4", "mnist-d8"]


def test_a_runs_files_come_through_dvc_api_from_git_or_the_cache(tmp_path):
    """run_file / run_json read another revision's files with dvc.api: a git-tracked report
    and a DVC-tracked image, each as that revision had it; a revision without the file, or
    whose data is gone from the cache (no remote), is one line naming the revision and path."""
    import os
    import shutil
    import subprocess
    import sys

    from tools import experiments

    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = str(Path(sys.executable).parent / "dvc")
    sh = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)  # noqa: E731
    sh("git", "init", "-q")
    sh(dvc, "init", "-q")
    (tmp_path / "reports").mkdir()
    revs = []
    for version in (b"old", b"new"):
        (tmp_path / "reports/r.json").write_text(json.dumps({"v": version.decode()}))
        (tmp_path / "image.png").write_bytes(b"\x89PNG " + version)
        sh(dvc, "add", "-q", "image.png")
        sh("git", "add", "-A")
        sh("git", "commit", "-qm", version.decode())
        revs.append(sh("git", "rev-parse", "HEAD").stdout.decode().strip())
    old, new = revs
    assert experiments.run_file(old, "image.png", tmp_path) == b"\x89PNG old"
    assert experiments.run_file(new, "image.png", tmp_path) == b"\x89PNG new"
    assert experiments.run_json(old, "reports/r.json", tmp_path) == {"v": "old"}
    assert experiments.run_json(old, "reports/none.json", tmp_path) == {}  # a run without that report
    with pytest.raises(SystemExit, match=f"^course: {old[:7]} has no plots/x.png, in git or as a DVC output$"):
        experiments.run_file(old, "plots/x.png", tmp_path, "course")
    shutil.rmtree(tmp_path / ".dvc/cache")
    with pytest.raises(SystemExit, match=f"^exercises: {old[:7]}'s image.png is in neither DVC's cache nor its remote"):
        experiments.run_file(old, "image.png", tmp_path, "exercises")
    with pytest.raises(SystemExit, match="^sweep: cannot read reports/r.json of 0000000: .*unknown Git revision"):
        experiments.run_json("0" * 40, "reports/r.json", tmp_path, "sweep")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_seeds_queues_one_dvc_sweep(monkeypatch, tmp_path):
    """`make seeds` is one `dvc exp run --queue` whose `-S seed=range(1,5)` DVC expands, by
    Hydra's sweep syntax, into a run per seed (named seeds-<machine>-1, -2, ...), then
    `dvc queue start`."""
    import shlex
    import subprocess

    from tools import experiments, seeds

    import os

    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}  # as under make test
    recipe = subprocess.run(["make", "--no-print-directory", "-n", "seeds", "MACHINE=vm"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert recipe.startswith("python -m tools.seeds --queue"), recipe
    commands = []
    monkeypatch.setattr(experiments.subprocess, "run", lambda cmd, **k: commands.append(cmd))
    seeds.main(shlex.split(recipe)[3:], root=tmp_path)  # no stored rows there: every seed queued
    assert commands == [["dvc", "exp", "run", "--queue", "--name", "seeds-vm", "-S", "seed=range(1,5)"],
                        ["dvc", "queue", "start", "-j", "1"]]


def test_a_runs_headline_metrics_leave_out_the_dvclive_summaries():
    """The three training stages' DVCLive summaries share their names (train_loss, step): flat,
    each would overwrite the last, and a study would judge a mix of stages as one metric."""
    from tools.experiments import headline

    metrics = {"metrics/train_ae.json": {"ae": {"test_mse": 0.026}},
               "plots/train_ae/live/metrics.json": {"train_loss": 0.02, "step": 7},
               "plots/train_vae/live/metrics.json": {"train_loss": 257.9, "step": 7}}
    assert headline(metrics) == {"ae.test_mse": 0.026}


def test_the_vaes_active_unit_probe_is_its_whole_mu_where_every_unit_is_active(monkeypatch):
    """downstream probes `vae_active` only where some unit is inactive; a run whose downstream
    looked and found none gives the study the VAE's own probe under that name, and a run from
    before downstream looked gives none."""
    from tools import study

    report = {"vae_active_units": {"units": [0, 1], "of": 2},
              "test_images": {"differences": {"ae-vae": {"mlp": {"se": 0.003}}}}}
    monkeypatch.setattr(study, "run_json", lambda rev, path: report)
    entry = {"rev": "r", "metrics": {"metrics/downstream.json": {"downstream": {
        "ae": {"mlp_test_acc": 0.72}, "vae": {"mlp_test_acc": 0.70}}}}}
    m = study.metrics(entry, ("downstream",))
    name = "AE - VAE active units, MLP probe accuracy"
    assert study.differences(m, (name,))[name] == pytest.approx(0.02)
    assert study.image_se(m, (name,)) == {name: 0.003}
    del report["vae_active_units"]
    m = study.metrics(entry, ("downstream",))
    assert math.isnan(study.differences(m, (name,))[name]) and study.image_se(m, (name,)) == {}


def test_the_budget_pairs_each_budget_with_the_shortest_by_seed_where_rows_are_kept():
    """Both budgets' runs share seeds (and pixel MLP): with per-run rows the change is a paired t
    on the per-seed differences, whose spread the seeds' common part leaves out; without, Welch."""
    from tools import budget, study

    base = {"best_minus_pixels": [-0.18, -0.16, -0.17], "ae_mse": [0.026, 0.025, 0.027],
            "vae_mse": [0.027, 0.026, 0.028], "ae_mlp": [0.71, 0.73, 0.72], "vae_mlp": [0.70, 0.72, 0.71]}
    rows = pd.DataFrame([{"experiment": f"e{e}s{s}", "latent_dim": 2, "epochs": e, "seed": s,
                          **{k: v[s] + (0.01 + 0.001 * s if e == 21 else 0.0) for k, v in base.items()}}
                         for e in (7, 21) for s in range(3)])
    summary = study.summarize(rows, ["latent_dim", "epochs"])
    paired = {c["number"]: c for c in budget.changes(summary, rows)}
    assert {c["test"] for c in paired.values()} == {"paired t"}
    assert paired["AE MLP probe"]["difference"] == pytest.approx(0.011)  # the mean of 0.010, 0.011, 0.012
    assert paired["AE MLP probe"]["se"] == pytest.approx(0.001 / math.sqrt(3))
    welch = {c["number"]: c for c in budget.changes(summary)}
    assert {c["test"] for c in welch.values()} == {"Welch"}
    assert welch["AE MLP probe"]["se"] > 10 * paired["AE MLP probe"]["se"]
