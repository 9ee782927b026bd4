"""The page people look at: `dvc plots show/diff` with vega inline, every plot titled and
labelled; the slow test renders a tiny run's page in headless Chromium, offline."""
from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
DATA_PLOTS = {name: spec for entry in DVC["plots"] if isinstance(entry, dict) for name, spec in entry.items()}


def tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("plot", list(DATA_PLOTS))
def test_every_data_plot_has_a_title_axis_labels_and_a_template_that_exists(plot):
    spec = DATA_PLOTS[plot]
    assert all(spec.get(key) for key in ("title", "x_label", "y_label")), f"{plot}: title, x_label and y_label"
    template = spec["template"]
    custom = REPO / ".dvc/plots" / f"{template}.json"
    assert custom.is_file() or template in {"linear", "simple", "confusion", "bar_horizontal"}, template


def test_the_templates_use_the_anchors_dvc_fills():
    for path in (REPO / ".dvc/plots").glob("*.json"):
        text = path.read_text()
        json.loads(text)
        for anchor in ("DATA", "TITLE", "X", "Y", "X_LABEL", "Y_LABEL"):
            assert f"<DVC_METRIC_{anchor}>" in text, f"{path.name}: no <DVC_METRIC_{anchor}>"


def test_the_page_template_carries_vega_and_loads_nothing_from_the_network():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc/config")
    page = REPO / ".dvc" / config["plots"]["html_template"]
    text = page.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "{scripts}" not in text  # DVC's CDN script tags go nowhere
    assert not re.search(r"<script[^>]*\bsrc=", text), "a script loaded from elsewhere"
    from dvc_render.vega import VegaRenderer

    for package, version in re.findall(r"npm/([a-z-]+)@([0-9.]+)", VegaRenderer.SCRIPTS):
        assert f"<!-- {package}@{version}\n" in text, f"{package}@{version}: not the version DVC's renderer expects"


def test_the_page_check_names_what_is_missing(tmp_path):
    """Against a page with one plot undrawn and one missing, without a browser: the
    probe's report is what Chromium would return."""
    check_page = tool("check_page")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": [{"a": {}}, {"b": {}}, "plots/x.png"]}))
    page = tmp_path / "index.html"
    page.write_text("<html><head></head><body></body></html>")
    report = {"vega": {"a": True, "c": True}, "images": {}, "errors": ["ReferenceError: vegaEmbed is not defined"],
              "warnings": ["The input spec uses Vega-Lite v5, but the current version of Vega-Lite is v5.2.0."],
              "failed": [], "height": 100}
    dom = f'<pre id="__check">{json.dumps(report)}</pre>'
    check_page.chromium = lambda probed, *args: dom
    problems, seen = check_page.check(page, tmp_path / "dvc.yaml")
    assert problems == ["script error: ReferenceError: vegaEmbed is not defined",
                        "b: not on the page (DVC could not read its data)",
                        "plots/x.png: not on the page (not produced here: `make repro` or `dvc pull`)"]
    assert seen["warnings"] == []  # vega-embed's version note on every DVC template is not a problem
    assert not list(tmp_path.glob(".check_*"))  # the probed copy is removed


@pytest.mark.slow  # ~60 s: a tiny `dvc repro`, then Chromium twice
@pytest.mark.skipif(not any(map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                    reason="no Chromium here (Debian: apt-get install chromium): the page check needs a real browser")
def test_plots_show_and_diff_draw_every_plot_offline(tmp_path, mirror):
    from test_dvc import make_repo, sh

    check_page = tool("check_page")
    repo = tmp_path / "repo"
    env = make_repo(repo, mirror)
    sh(["dvc", "repro"], repo, env)
    sweep = repo / "plots/sweep"  # written by `make sweep-report`, not a stage: take main's
    shutil.copytree(REPO / "plots/sweep", sweep, ignore=shutil.ignore_patterns("*.png"))
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "run"], repo, env)
    for command in (["dvc", "plots", "show", "-o", "shown"], ["dvc", "plots", "diff", "HEAD", "-o", "diffed"]):
        sh(command, repo, env)
        page = repo / command[-1] / "index.html"
        problems, seen = check_page.check(page, repo / "dvc.yaml")
        assert not problems, f"{' '.join(command)}: {problems}"
        assert len(seen["vega"]) == len(DATA_PLOTS), seen


def test_exps_table_shows_what_each_experiment_changed_within_120_columns():
    """`dvc exp show --json`'s layout: the workspace, then a commit and its experiments."""
    exps = tool("exps")

    def data(d, mse, dataset="fashion_mnist"):
        return {"params": {"params.yaml": {"data": {"latent_dim": d, "data": {"dataset": dataset, "seed": 0},
                                                    "train_ae": {"lr": 0.008}}}},
                "metrics": {"metrics/train_ae.json": {"data": {"ae": {"test_mse": mse}}},
                            "metrics/train_vae.json": {"data": {"vae": {"test_mse": mse, "test_nelbo": 259.343}}},
                            "metrics/downstream.json": {"data": {"downstream": {"best_latent_test_acc": 0.7154,
                                                                                "best_latent_minus_pixels": -0.1757}}}}}

    show = [{"rev": "workspace", "data": data(2, 0.026228)},
            {"rev": "a" * 40, "name": "main", "data": data(2, 0.026228),
             "experiments": [{"revs": [{"rev": "b" * 40, "name": "nitty-hugs", "data": data(8, 0.013478)}]},
                             {"revs": [{"rev": "c" * 40, "name": "long-" * 30, "data": data(2, 0.03686, "mnist")}]}]}]
    text = exps.table(exps.rows(show))
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines), text
    assert lines[0].split()[:3] == ["Experiment", "changed", "params"]
    main, exp8, mnist = lines[2], lines[3], lines[4]
    assert main.split()[0] == "main" and "0.02623" in main.split() and "=" not in main  # nothing changed against itself
    assert "latent_dim=8" in exp8 and "0.01348" in exp8 and "data.dataset" not in exp8
    assert "data.dataset=mnist" in mnist and "0.03686" in mnist and "259.3" in mnist and mnist.count(" - ") >= 1


def test_exps_help_is_its_own_and_runs_no_dvc(monkeypatch, capsys):
    """`python -m tools.exps --help` prints the tool's help (it used to hand --help to
    `dvc exp show --json` and crash on the help text); other arguments go to dvc."""
    exps = tool("exps")
    monkeypatch.setattr(exps.subprocess, "run", lambda *a, **k: pytest.fail("ran dvc for --help"))
    with pytest.raises(SystemExit) as exit:
        exps.main(["--help"])
    assert exit.value.code == 0 and "dvc exp show -h" in capsys.readouterr().out
    monkeypatch.setattr(exps.subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(cmd, 0, "usage: ...", ""))
    with pytest.raises(SystemExit, match="printed no JSON"):
        exps.main(["-n", "3"])
