"""tools/same_outputs.py: a change of the stages' code that moves no output keeps the studies' rows."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from stages.core.representations import PCARepresentation
from tools import same_outputs, study

OLD = {"stages/preprocess.py": "P", "stages/core/pca.py": "A"}
NEW = {"stages/preprocess.py": "P", "stages/core/pca.py": "A2"}
OUTS = {"models/ae.pt": "m", "metrics/train_ae.json": "j"}
WHY = ["--why", "the same sums in another order, exact"]


def write_lock(root, code: dict, outs: dict, latent_dim: int = 2, evaluate: dict | None = None) -> None:
    """A dvc.lock of two stages (three with ``evaluate``'s code): ``code`` ({path: md5}) their code
    deps, ``outs`` train_ae's outputs."""
    deps = lambda paths: [{"path": p, "md5": m} for p, m in paths.items()]  # noqa: E731
    own = lambda inside: {p: m for p, m in code.items() if ("pre" in p) == inside}  # noqa: E731
    stages = {
        "preprocess": {"deps": deps({"data/raw": "r.dir", **own(True)}), "outs": deps({"data/processed": "p.dir"}),
                       "params": {"params.yaml": {"data": {"dataset": "mnist"}}}},
        "train_ae": {"deps": deps({"data/processed": "p.dir", **own(False)}), "outs": deps(outs),
                     "params": {"params.yaml": {"latent_dim": latent_dim, "seed": 0}}}}
    if evaluate:
        stages["evaluate"] = {"deps": deps(evaluate), "outs": deps({"metrics/evaluate.json": "e"})}
    (root / "dvc.lock").write_text(json.dumps({"schema": "2.0", "stages": stages}))


def git(root, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


def committed(root, **lock) -> str:
    """A git repository in ``root`` whose one commit holds a dvc.lock (``write_lock``'s); its short hash."""
    git(root, "init", "-q")
    write_lock(root, **lock)
    git(root, "add", "dvc.lock")
    git(root, "commit", "-qm", "old")
    return git(root, "rev-parse", "--short=7", "HEAD")


def test_a_change_that_moves_no_output_is_kept_and_carries_the_rows(tmp_path, capsys):
    commit = committed(tmp_path, code=OLD, outs=OUTS)
    write_lock(tmp_path, NEW, OUTS)
    same_outputs.main(["HEAD", "workspace", *WHY], root=tmp_path)  # as `make same-outputs A=HEAD` passes it
    assert "3 outputs identical at {'data.dataset': 'mnist', 'latent_dim': 2, 'seed': 0}" in capsys.readouterr().out
    kept = json.loads((tmp_path / study.SAME_OUTPUTS).read_text())
    (check,) = kept["checks"]
    assert (check["from"], check["to"]) == (study.digest(OLD), study.digest(NEW))
    assert (check["before"], check["after"], check["why"]) == (commit, "workspace", WHY[1])
    assert check["changed"] == ["stages/core/pca.py"] and kept["code_states"][check["to"]] == NEW

    rows = pd.DataFrame([{"experiment": "old", "code": OLD, "stale": []},
                         {"experiment": "other", "code": {**OLD, "stages/x.py": "X"}},
                         {"experiment": "mixed", "code": {**OLD, "stages/preprocess.py": "P2"}},
                         {"experiment": "own code differs", "code": {**OLD, "tools/x.py (training)": "T"}}])
    flagged = study.flag(rows, NEW, tmp_path)
    # carried: the checked state; not: a state no check names, even when its other files agree, or
    # one whose code outside stages/ (the bottleneck's own training code) is not now's
    assert flagged["stale"].tolist() == [[], ["stages/core/pca.py", "stages/x.py"],
                                         ["stages/core/pca.py", "stages/preprocess.py"],
                                         ["stages/core/pca.py", "tools/x.py (training)"]]
    assert study.flag(rows, {**NEW, "tools/x.py (training)": "T"}, tmp_path)["stale"].tolist()[3] == []
    assert study.flag(rows, NEW, tmp_path / "elsewhere")["stale"].tolist()[0] == ["stages/core/pca.py"]
    note = study.carried_note(flagged, NEW, tmp_path)
    assert note.startswith("Carried: 1 of 4 runs ran at earlier code (stages/core/pca.py)"), note
    assert f"at data.dataset mnist, latent_dim 2, seed 0 ({study.SAME_OUTPUTS}); why at every other params: " \
        f"{WHY[1]}. They count" in note, note
    # a chain of checks carries too, and a check runs one way only
    newer = {**NEW, "stages/core/pca.py": "A3"}
    steps = [{"from": study.digest(OLD), "to": study.digest(NEW)}, {"from": study.digest(NEW), "to": study.digest(newer)}]
    assert study.carried(OLD, newer, steps) == steps
    assert study.carried(NEW, OLD, steps[:1]) is None


@pytest.mark.parametrize("after, said", [
    (dict(code=NEW, outs={**OUTS, "models/ae.pt": "m2"}),
     "not the same outputs, nothing recorded: train_ae's output models/ae.pt"),
    (dict(code=NEW, outs=OUTS, latent_dim=8), "train_ae's param latent_dim"),
    (dict(code=OLD, outs=OUTS), "the same code; nothing to record"),
    # evaluate still at the old pca.py: a partial rerun is no run at the new code
    (dict(code=NEW, outs=OUTS, evaluate={"stages/core/pca.py": "A"}), "workspace's stages ran at different versions"),
])
def test_other_outputs_params_the_same_code_or_a_partial_rerun_record_nothing(tmp_path, after, said):
    committed(tmp_path, code=OLD, outs=OUTS, **({"evaluate": {"stages/core/pca.py": "A"}} if "evaluate" in after else {}))
    write_lock(tmp_path, **after)
    with pytest.raises(SystemExit, match=said):
        same_outputs.main(["HEAD", *WHY], root=tmp_path)
    assert not (tmp_path / study.SAME_OUTPUTS).exists()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    committed(tmp_path, code=OLD, outs=OUTS)
    with pytest.raises(SystemExit, match="no git revision or experiment"):
        same_outputs.main(["no-such-run", *WHY], root=tmp_path)
    with pytest.raises(SystemExit, match="say why"):
        same_outputs.main(["HEAD", "--why", " "], root=tmp_path)
    (tmp_path / "dvc.lock").write_text("stages: [unclosed\n")
    with pytest.raises(SystemExit, match="a dvc.lock is not YAML .*`git checkout dvc.lock`"):
        same_outputs.main(["HEAD", *WHY], root=tmp_path)
    (tmp_path / "dvc.lock").unlink()
    with pytest.raises(SystemExit, match="the workspace has no dvc.lock"):
        same_outputs.main(["HEAD", *WHY], root=tmp_path)
    assert not (tmp_path / study.SAME_OUTPUTS).exists()
    (tmp_path / "reports").mkdir()
    (tmp_path / study.SAME_OUTPUTS).write_text(json.dumps({"checks": [{"from": "a"}]}))
    with pytest.raises(study.PipelineError, match="lacks its from/to .*git checkout reports/same_outputs.json"):
        study.flag(pd.DataFrame([{"code": OLD}]), NEW, tmp_path)


def test_experiments_are_named_by_their_ref_and_commit(tmp_path):
    """A DVC experiment is a commit under refs/exps/<baseline>/<name>: found by its name, kept with
    its commit; a name two experiments share is refused."""
    committed(tmp_path, code=OLD, outs=OUTS)
    write_lock(tmp_path, NEW, OUTS)
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-qm", "new")
    new = git(tmp_path, "rev-parse", "HEAD")
    git(tmp_path, "update-ref", f"refs/exps/{new[:2]}/{new[2:]}/d8-new", new)
    git(tmp_path, "reset", "-q", "--hard", "HEAD~1")
    assert same_outputs.lock_text("d8-new", tmp_path)[1] == f"d8-new ({new[:7]})"
    same_outputs.main(["HEAD", "d8-new", *WHY], root=tmp_path)
    assert json.loads((tmp_path / study.SAME_OUTPUTS).read_text())["checks"][0]["after"] == f"d8-new ({new[:7]})"
    git(tmp_path, "update-ref", "refs/exps/ab/cdef/d8-new", new)
    with pytest.raises(SystemExit, match="2 experiments are named 'd8-new'"):
        same_outputs.lock_text("d8-new", tmp_path)


def test_a_report_rewritten_by_the_current_rule_moves_to_the_workspace_only_where_its_rows_stay_fresh(
        tmp_path, capsys):
    """``--reuse``'s rows: flagged against the workspace's dvc.lock where a check carries them; else
    (or where the workspace has no dvc.lock) against the code the report was written at, said."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/sweep.json").write_text(json.dumps({
        "rows": [{"experiment": "a", "code": study.digest(OLD)}], "code_now": study.digest(OLD),
        "code_states": {study.digest(OLD): OLD}}))
    assert study.stored(tmp_path, "sweep", workspace=True)[1] == OLD  # no dvc.lock here
    write_lock(tmp_path, NEW, OUTS)
    rows, now = study.stored(tmp_path, "sweep", workspace=True)
    assert now == OLD and rows["stale"].tolist() == [[]]
    assert "no check carries them" in capsys.readouterr().out
    (tmp_path / study.SAME_OUTPUTS).write_text(json.dumps({"checks": [{"from": study.digest(OLD),
                                                                       "to": study.digest(NEW)}]}))
    rows, now = study.stored(tmp_path, "sweep", workspace=True)
    assert now == NEW and rows["stale"].tolist() == [[]]


def test_pca_encodes_in_blocks_to_the_same_bits(monkeypatch):
    """The blocks change no bit: integer sums, exact in float64 in any order."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    rep = PCARepresentation.fit(rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8), 5)
    one_shot = ((images.reshape(50, -1).astype(np.float64) @ rep.components - rep._mean_code)
                / (255.0 * 2.0**rep.QUANT_BITS)).astype(np.float32)
    monkeypatch.setattr(PCARepresentation, "ENCODE_BLOCK", 7)
    assert np.array_equal(rep.encode(images), one_shot)
