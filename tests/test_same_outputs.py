"""tools/same_outputs.py: a change of the stages' code that moves no output keeps the studies' rows."""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from tools import same_outputs, study


def write_lock(root, code: dict, outs: dict, latent_dim: int = 2) -> None:
    """A dvc.lock of two stages: ``code`` ({path: md5}) their code deps, ``outs`` the second's outputs."""
    deps = lambda paths: [{"path": p, "md5": m} for p, m in paths.items()]  # noqa: E731
    own = lambda inside: {p: m for p, m in code.items() if ("pre" in p) == inside}  # noqa: E731
    (root / "dvc.lock").write_text(json.dumps({"schema": "2.0", "stages": {
        "preprocess": {"deps": deps({"data/raw": "r.dir", **own(True)}), "outs": deps({"data/processed": "p.dir"}),
                       "params": {"params.yaml": {"data": {"dataset": "mnist"}}}},
        "train_ae": {"deps": deps({"data/processed": "p.dir", **own(False)}), "outs": deps(outs),
                     "params": {"params.yaml": {"latent_dim": latent_dim, "seed": 0}}}}}))


def git(root, *args) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True)


OLD = {"stages/preprocess.py": "P", "stages/core/pca.py": "A"}
NEW = {"stages/preprocess.py": "P", "stages/core/pca.py": "A2"}
OUTS = {"models/ae.pt": "m", "metrics/train_ae.json": "j"}


def test_a_change_that_moves_no_output_is_kept_and_carries_the_rows(tmp_path, capsys):
    git(tmp_path, "init", "-q")
    write_lock(tmp_path, OLD, OUTS)
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-qm", "old")
    write_lock(tmp_path, NEW, OUTS)
    same_outputs.main(["HEAD"], root=tmp_path)
    assert "3 outputs identical at {'data.dataset': 'mnist', 'latent_dim': 2, 'seed': 0}" in capsys.readouterr().out
    kept = json.loads((tmp_path / study.SAME_OUTPUTS).read_text())
    (check,) = kept["checks"]
    assert (check["from"], check["to"]) == (study.digest(OLD), study.digest(NEW))
    assert check["changed"] == ["stages/core/pca.py"]
    assert check["after"] == "workspace" and len(check["before"]) == 7 and check["before"] != "HEAD"  # the commit
    assert kept["code_states"][check["to"]] == NEW

    rows = pd.DataFrame([{"experiment": "old", "code": OLD},
                         {"experiment": "other", "code": {**OLD, "stages/x.py": "X"}},
                         {"experiment": "mixed", "code": {**OLD, "stages/preprocess.py": "P2"}}])
    flagged = study.flag(rows, NEW, tmp_path)
    # carried: the checked state; not: a state no check names, even when its other files agree
    assert flagged["stale"].tolist() == [[], ["stages/core/pca.py", "stages/x.py"],
                                         ["stages/core/pca.py", "stages/preprocess.py"]]
    assert study.flag(rows, NEW, tmp_path / "elsewhere")["stale"].tolist()[0] == ["stages/core/pca.py"]
    assert "Carried: 1 of 3 runs ran at earlier code (stages/core/pca.py); a run at it" in study.carried_note(flagged, NEW)
    # a chain of checks carries too, and a check runs one way only
    newer = {**NEW, "stages/core/pca.py": "A3"}
    steps = [(study.digest(OLD), study.digest(NEW)), (study.digest(NEW), study.digest(newer))]
    assert study.carried(OLD, newer, steps)
    assert not study.carried(NEW, OLD, steps[:1])


@pytest.mark.parametrize("after, said", [
    (dict(code=NEW, outs={**OUTS, "models/ae.pt": "m2"}),
     "not the same outputs, nothing recorded: train_ae's output models/ae.pt"),
    (dict(code=NEW, outs=OUTS, latent_dim=8), "train_ae's param latent_dim"),
    (dict(code=OLD, outs=OUTS), "the same code; nothing to record"),
])
def test_other_outputs_params_or_the_same_code_record_nothing(tmp_path, after, said):
    git(tmp_path, "init", "-q")
    write_lock(tmp_path, OLD, OUTS)
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-qm", "old")
    write_lock(tmp_path, **after)
    with pytest.raises(SystemExit, match=said):
        same_outputs.main(["HEAD"], root=tmp_path)
    with pytest.raises(SystemExit, match="no git revision or experiment"):
        same_outputs.main(["no-such-run"], root=tmp_path)
    assert not (tmp_path / study.SAME_OUTPUTS).exists()


def test_a_report_rewritten_by_the_current_rule_is_flagged_against_the_workspace(tmp_path):
    """``--reuse``'s rows: flagged against the workspace's dvc.lock (carried where a check says
    so), or against the code the report was written at where the workspace has no dvc.lock."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/sweep.json").write_text(json.dumps({
        "rows": [{"experiment": "a", "code": study.digest(OLD)}], "code_now": study.digest(OLD),
        "code_states": {study.digest(OLD): OLD}}))
    assert study.stored(tmp_path, "sweep", workspace=True)[1] == OLD  # no dvc.lock here
    write_lock(tmp_path, NEW, OUTS)
    rows, now = study.stored(tmp_path, "sweep", workspace=True)
    assert now == NEW and rows["stale"].tolist() == [["stages/core/pca.py"]]
    assert study.stored(tmp_path, "sweep")[0]["stale"].tolist() == [[]]  # against its own code
    (tmp_path / study.SAME_OUTPUTS).write_text(json.dumps({"checks": [{"from": study.digest(OLD),
                                                                       "to": study.digest(NEW)}]}))
    assert study.stored(tmp_path, "sweep", workspace=True)[0]["stale"].tolist() == [[]]


def test_a_damaged_lock_is_one_line(tmp_path):
    git(tmp_path, "init", "-q")
    write_lock(tmp_path, OLD, OUTS)
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-qm", "old")
    (tmp_path / "dvc.lock").write_text("stages: [unclosed\n")
    with pytest.raises(SystemExit, match="a dvc.lock is not YAML .*`git checkout dvc.lock`"):
        same_outputs.main(["HEAD"], root=tmp_path)
    assert not (tmp_path / study.SAME_OUTPUTS).exists()
