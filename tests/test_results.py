"""main carries its results: dvc.lock, metrics/, reports/ and the plot CSVs of a full
default run of this very code and params, and the README's results block says what
they say. Fast: nothing is trained; `dvc status` compares hashes.

These check what is committed (HEAD, in a clone of it), not the workspace: after
`make repro` on another machine, or a `dvc exp run`, the workspace's outputs may differ
in their last digits from main's, and that is no reason for `make test` to fail."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from tools.readme_results import BLOCKS, README, SECTIONS, named_block, readme_block, results_markdown

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
# What `dvc status` says of an output that is simply not here: "deleted" where it was
# produced before, "not in cache" in a fresh clone. Neither is drift.
NOT_PRODUCED = ("deleted", "not in cache")


def committed(path: str) -> bool:
    out = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=REPO, capture_output=True)
    return out.returncode == 0


def git_outputs() -> list[str]:
    """Every `cache: false` output and metrics file of dvc.yaml: what git keeps per commit."""
    paths = []
    for spec in DVC["stages"].values():
        for entry in spec.get("outs", []) + spec.get("metrics", []):
            if isinstance(entry, dict):
                (path, options), = entry.items()
                if options.get("cache") is False:
                    paths.append(path)
    return paths


GIT_CHECKOUT = pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout")


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Path:
    """A clone of the checkout's HEAD: what is committed, whatever the workspace holds."""
    path = tmp_path_factory.mktemp("head") / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(path)], check=True)
    return path


@GIT_CHECKOUT
def test_lock_metrics_reports_and_plot_csvs_are_committed():
    missing = [p for p in ["dvc.lock", *git_outputs()] if not committed(p)]
    assert not missing, f"not committed: {missing}; run `dvc repro` and commit them with the change"


@GIT_CHECKOUT
def test_committed_results_match_the_code_and_params(head):
    """`dvc status` on HEAD: no stage may have a changed command, code dependency or
    param, and no committed metrics/report/CSV may differ from dvc.lock. Outputs a clone
    does not hold (data, models: DVC's cache and remote) are fine."""
    result = subprocess.run([str(Path(sys.executable).parent / "dvc"), "status", "--json"], cwd=head,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout or "{}")
    git_kept = set(git_outputs())
    drift = {}
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):  # "changed command", "always changed"...
                drift.setdefault(stage, []).append(change)
                continue
            for kind, paths in change.items():
                for path, state in paths.items():
                    if isinstance(state, dict):  # params.yaml: {key: state}
                        drift.setdefault(stage, []).extend(f"{path} {key}: {s}" for key, s in state.items())
                    elif state not in NOT_PRODUCED or (kind == "changed outs" and path in git_kept):
                        drift.setdefault(stage, []).append(f"{path}: {state}")
    assert not drift, ("dvc.lock and the committed metrics are stale for this code and params: "
                       f"{drift}; run `dvc repro` and commit dvc.lock, metrics/, reports/ and the plot CSVs")


@GIT_CHECKOUT
@pytest.mark.parametrize("name", list(BLOCKS), ids=str)
def test_results_blocks_are_generated_from_the_committed_reports(head, name):
    block = readme_block((head / name).read_text())
    assert block, f"{name} lost its results markers; see tools/readme_results.py"
    assert block == BLOCKS[name](head), f"{name}: results are stale: run `make readme` and commit"


@GIT_CHECKOUT
@pytest.mark.parametrize("page, name", list(SECTIONS), ids=lambda x: str(x))
def test_named_blocks_are_generated_from_the_committed_reports(head, page, name):
    block = named_block((head / page).read_text(), name)
    assert block is not None, f"{page} lost the markers of its block {name}; see tools/readme_results.py"
    assert block == SECTIONS[(page, name)](head), f"{page}: block {name} is stale: run `make readme` and commit"


def project_imports(path: Path) -> set[Path]:
    """The project's own modules that ``path`` imports, directly or through each other."""
    import ast

    seen, todo = set(), [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        package = current.relative_to(REPO).parent.as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(current.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from .x import y, relative to the current package
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                candidate = REPO / (name.replace(".", "/") + ".py")
                if name.startswith("stages") and candidate.is_file() and candidate.name != "__init__.py":
                    todo.append(candidate)
    return {p.relative_to(REPO) for p in seen}


@pytest.mark.parametrize("stage", list(DVC["stages"]))
def test_each_stage_lists_exactly_the_code_it_imports(stage):
    """dvc.yaml's code deps are what DVC watches: a module a stage imports but does not
    list would change results without rerunning the stage (and without a dvc.lock diff)."""
    listed = {Path(d) for d in DVC["stages"][stage]["deps"] if d.endswith(".py")}
    imported = project_imports(REPO / "stages" / f"{stage}.py")
    assert listed == imported, f"{stage}: missing from deps {sorted(map(str, imported - listed))}, " \
                               f"listed but not imported {sorted(map(str, listed - imported))}"


@pytest.mark.parametrize("stage", list(DVC["stages"]))
def test_each_stage_lists_exactly_the_files_it_reads(stage):
    """dvc.yaml's data deps are the files of stages/core/paths.py that another stage
    writes and that the stage's code names (its own file and the library it imports)."""
    import ast

    from stages.core import paths as table

    named = {node.attr for module in project_imports(REPO / "stages" / f"{stage}.py")
             for node in ast.walk(ast.parse((REPO / module).read_text()))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "paths"}
    read = {getattr(table, name) for name in named} & set(table.WRITTEN_BY) - set(table.WRITES[stage])
    listed = {Path(d) for d in DVC["stages"][stage].get("deps", []) if not d.endswith(".py")}
    assert listed == read, f"{stage}: missing from deps {sorted(map(str, read - listed))}, " \
                           f"listed but not read {sorted(map(str, listed - read))}"


def committed_results(head: Path, tmp_path: Path) -> Path:
    """The committed metrics/, reports/ and params.yaml in ``tmp_path``: a repro may be
    under way in the workspace."""
    for folder in ("metrics", "reports"):
        shutil.copytree(head / folder, tmp_path / folder)
    shutil.copy(head / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@GIT_CHECKOUT
def test_make_readme_rewrites_only_the_blocks_and_refuses_a_file_without_markers(head, tmp_path):
    from tools.readme_results import BEGIN, DETAILS, END, begin, end, main

    root = committed_results(head, tmp_path)
    (root / DETAILS).parent.mkdir()
    named = lambda page: "".join(f"{begin(n)}\nstale\n{end(n)}\n" for p, n in SECTIONS if p == page)  # noqa: E731
    for name in {*BLOCKS, *(p for p, _ in SECTIONS)}:
        (root / name).write_text(f"intro\n{BEGIN}\nstale numbers\n{END}\noutro\n{named(name)}" if name in BLOCKS
                                 else f"intro\n{named(name)}")
    main(root)
    for name, block in BLOCKS.items():
        assert (root / name).read_text().startswith(f"intro\n{BEGIN}\n{block(root)}\n{END}\noutro\n")
    for (page, name), block in SECTIONS.items():
        assert f"{begin(name)}\n{block(root)}\n{end(name)}\n" in (root / page).read_text()

    (root / DETAILS).write_text("no markers here\n")
    (root / README).write_text(f"{BEGIN}\nstale\n{END}\n")
    with pytest.raises(SystemExit, match="markers of the results block are missing"):
        main(root)
    assert (root / DETAILS).read_text() == "no markers here\n"
    assert (root / README).read_text() == f"{BEGIN}\nstale\n{END}\n"  # nothing written when one file lacks them


@GIT_CHECKOUT
def test_headline_table_gives_intervals_only_from_a_seed_report_of_the_committed_params(head, tmp_path):
    import json

    from tools.experiments import SEED, flat

    root = committed_results(head, tmp_path)
    for old in root.glob("reports/seeds*.json"):
        old.unlink()
    params = flat(yaml.safe_load((root / "params.yaml").read_text()))
    summary = {"mean": 0.02616, "half_width": 0.000304147, "sd": 0.000244951, "n": 5}
    report = {"config": {k: v for k, v in params.items() if k != SEED},
              "runs": [{"experiment": f"s{i}", "seed": i, "machine": "m"} for i in range(5)],
              "metrics": {"ae.test_mse": summary}, "differences": {}}
    (root / "reports/seeds.json").write_text(json.dumps(report))
    table = results_markdown(root)
    assert "5 runs of `reports/seeds.json`" in table
    ae = next(line for line in table.splitlines() if line.startswith("| AE test MSE"))
    assert ae.endswith("| 0.02616 ± 0.00030 |"), ae
    seeds = lambda table: {line.split(" | ")[0]: line.split(" | ")[-1] for line in table.splitlines()  # noqa: E731
                           if line.startswith("| ") and not line.startswith("| metric")}
    assert all(cell == "one run |" for row, cell in seeds(table).items() if not row.startswith("| AE test MSE"))

    # Measured at another latent size: no interval is borrowed from it.
    report["config"]["latent_dim"] = params["latent_dim"] + 6
    (root / "reports/seeds.json").write_text(json.dumps(report))
    table = results_markdown(root)
    assert "No seed report was measured at these params" in table
    assert seeds(table) and all(cell == "one run |" for cell in seeds(table).values())

    # A report that does not say where it was measured is not used either.
    del report["config"]
    (root / "reports/seeds.json").write_text(json.dumps(report))
    assert all(cell == "one run |" for cell in seeds(results_markdown(root)).values())


def test_headline_table_gives_each_runs_interval_over_its_test_images(head):
    """The column 'over the test images' is the committed run's own: an accuracy's binomial
    half-width, the gap's paired one from reports/downstream.json, an AUROC's DeLong one."""
    import json
    import math

    table = results_markdown(head)
    cells = {line.split(" | ")[0]: line.split(" | ")[2] for line in table.splitlines()
             if line.startswith("| ") and not line.startswith(("| metric", "|---"))}
    acc = json.loads((head / "metrics/train_classifier.json").read_text())["classifier"]["test_acc"]
    assert cells["| pixel MLP, test accuracy"] == f"{acc:.4f} ± {1.959964 * math.sqrt(acc * (1 - acc) / 10000):.4f}"
    gap = json.loads((head / "reports/downstream.json").read_text())["test_images"]["differences"]["best-pixels"]
    assert cells["| **best latent − the same classifier on pixels**"].endswith(
        f"± {1.959964 * next(iter(gap.values()))['se']:.4f}")
    assert cells["| AE test MSE per pixel, [0, 1] scale"] == "–"


def test_plus_minus_keeps_two_significant_digits_of_the_half_width():
    from tools.study import pm

    assert pm(-0.18004, 0.00624953) == "-0.1800 ± 0.0062"
    assert pm(257.652, 0.3318) == "257.65 ± 0.33"
    assert pm(0.8458, 0.0) == "0.8458 ± 0"
    assert pm(0.02616, 0.0003, 1, 4) == "0.0262" and pm(0.02616, 0.0003, 3, 4, "+") == "+0.0262 ± 0.0003"
    assert pm(float("nan"), 0.1, 3, 4) == "–"


def test_sweep_table_keeps_the_newest_run_per_latent_size_of_this_sweep_only(monkeypatch):
    """`dvc exp show --json`'s layout: the baseline, then its experiments' revs."""
    from tools import study
    from tools.experiments import runs
    from tools.sweep import table

    monkeypatch.setattr(study, "run_json", lambda rev, path: {})  # the made-up revs have no reports/

    def data(d, ts, dataset="fashion_mnist", mse=0.01):
        metrics = {"metrics/train_ae.json": {"ae": {"test_mse": mse}},
                   "metrics/train_vae.json": {"vae": {"test_mse": mse, "active_units": min(d, 6)}},
                   "metrics/evaluate.json": {"pca": {"test_mse": 2 * mse}},
                   "metrics/train_classifier.json": {"classifier": {"test_acc": 0.89, "logreg_test_acc": 0.85}},
                   "metrics/downstream.json": {"downstream": {**{r: {"logreg_test_acc": 0.5, "mlp_test_acc": 0.6}
                                                                 for r in ("ae", "vae", "pca")},
                                                              "best_latent_minus_pixels": -0.29}}}
        return {"timestamp": ts,
                "params": {"params.yaml": {"data": {"latent_dim": d, "data": {"dataset": dataset}}}},
                "metrics": {f: {"data": v} for f, v in metrics.items()}}

    def exp(name, *args, state="success", **kwargs):
        return {"name": name, "executor": {"state": state},
                "revs": [{"rev": name * 8, "name": name, "data": data(*args, **kwargs)}]}

    show = [{"rev": "workspace", "data": data(2, "")},
            {"rev": "a" * 40, "name": "main", "data": data(2, "2026-01-01T00:00:00", mse=0.03),
             "experiments": [exp("old8", 8, "2026-01-02", mse=0.02),
                             {**exp("new8", 8, "2026-01-03", mse=0.015), "executor": None},  # run outside the queue
                             exp("q16", 16, "2026-01-04", state="running"),
                             exp("mnist", 2, "2026-01-05", dataset="mnist")]}]
    df = table(runs(show))
    assert df["latent_dim"].tolist() == [2, 8]
    assert df["experiment"].tolist() == ["main", "new8"] and df["ae_mse"].tolist() == [0.03, 0.015]
    assert df["pixels_mlp"].tolist() == [0.89, 0.89]


def test_sweep_report_waits_while_the_queue_runs(monkeypatch):
    from tools import experiments

    states = iter(["queued", "running", "success"])
    calls = []

    def show(rev):
        calls.append(rev)
        return [{"rev": "b" * 40, "name": "main", "data": {},
                 "experiments": [{"name": "e", "executor": {"state": next(states)}, "revs": [{"rev": "c" * 40, "data": {}}]}]}]

    monkeypatch.setattr(experiments, "dvc_exp_show", show)
    entries = experiments.wait("HEAD", poll=0)
    assert len(calls) == 3 and entries[1]["state"] == "success"

    states = iter(["queued"] * 5)  # no worker: stop with a message, not forever
    with pytest.raises(SystemExit, match="dvc queue start"):
        experiments.wait("HEAD", poll=0)


def test_sweep_report_without_finished_runs_says_what_to_run(monkeypatch, tmp_path):
    from tools import experiments, sweep

    monkeypatch.setattr(experiments, "dvc_exp_show", lambda rev: [{"rev": "b" * 40, "name": "main", "data": {}}])
    with pytest.raises(SystemExit, match="run `make sweep` first"):
        sweep.main(["--poll", "0"], root=tmp_path)
    with pytest.raises(SystemExit, match="run `make sweep` first"):
        sweep.main(["--now"], root=tmp_path)  # --now: one look, no wait
    assert not list(tmp_path.iterdir())  # nothing written
