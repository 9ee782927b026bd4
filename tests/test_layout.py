"""The house's rules, checked on the code itself: stages are leaves, tools stay outside
the library, and the names written out in code match the libraries they copy."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO

STAGE_FILES = sorted((REPO / "stages").glob("*.py"))
CORE_FILES = sorted((REPO / "stages/core").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    package = path.relative_to(REPO).parent.as_posix().replace("/", ".")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
    return out


@pytest.mark.parametrize("path", [p for p in STAGE_FILES if p.name != "__init__.py"], ids=lambda p: p.stem)
def test_a_stage_imports_no_other_stage(path):
    stages = {f"stages.{p.stem}" for p in STAGE_FILES if p.name != "__init__.py"}
    assert not imported_modules(path) & stages, f"{path.name} imports a stage; move what they share to stages/core"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.stem)
def test_the_library_imports_no_stage_and_no_tool(path):
    stages = {f"stages.{p.stem}" for p in STAGE_FILES if p.name != "__init__.py"}
    bad = {m for m in imported_modules(path) if m.startswith(("tools", "benchmarks")) or m in stages}
    assert not bad, f"stages/core/{path.name} imports {sorted(bad)}"


def test_core_has_no_command_line():
    """Tools with a __main__ live in tools/, beside benchmarks/."""
    assert not [p.name for p in CORE_FILES if re.search(r"^if __name__ == .__main__.:", p.read_text(), re.M)]


def test_only_plots_draws_figures():
    """The pipeline's figures in stages/core/plots.py, the studies' in tools/figures.py."""
    drawing = [p.relative_to(REPO).as_posix() for p in [*STAGE_FILES, *CORE_FILES, *(REPO / "tools").glob("*.py")]
               if p.name not in ("plots.py", "figures.py")
               and ("plt.subplots" in p.read_text() or "matplotlib.use" in p.read_text())]
    assert drawing == []


def test_the_library_holds_no_study():
    """A figure, model or builder only a study uses lives in tools/: changing it reruns no stage."""
    study = re.compile(r"^(def (sweep|budget|error_bars|png_panels|bottleneck)\(|class Bottleneck)", re.M)
    assert [p.name for p in CORE_FILES if study.search(p.read_text())] == []


@pytest.mark.parametrize("package", ["stages.core", "tools"])
def test_no_module_imports_itself_back(package):
    """No import circle in stages/core (errors.py holds the error every module raises) nor
    in tools (statistics in noise.py, reading and writing reports in study.py)."""
    files = CORE_FILES if package == "stages.core" else sorted((REPO / "tools").glob("*.py"))
    graph = {p.stem: {m[len(package) + 1:].split(".")[0] for m in imported_modules(p)
                      if m.startswith(package + ".")} - {p.stem} for p in files}
    graph = {k: {m for m in v if m in graph} for k, v in graph.items()}

    def reaches(a: str, b: str, seen: set) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n})) for n in graph[a])

    assert [m for m in graph if reaches(m, m, {m})] == []


def test_tools_are_a_package_without_path_edits():
    assert [p.name for p in [*(REPO / "tools").glob("*.py"), *(REPO / "benchmarks").glob("*.py")]
            if "sys.path" in p.read_text()] == []


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_file_and_class_names_are_torchvisions(dataset):
    from stages.core import data

    cls = data.torchvision_dataset(dataset)
    assert data.raw_files(dataset) == [name for name, _md5 in cls.resources]
    assert data.class_names(dataset) == list(cls.classes)


@pytest.mark.parametrize("n, ncols, padding, pad_value", [(12, 12, 2, 1.0), (225, 15, 0, 0.0), (10, 4, 2, 1.0)])
def test_image_tiles_are_torchvisions_make_grid(n, ncols, padding, pad_value):
    from torchvision.utils import make_grid

    from stages.core.plots import _tile

    images = np.random.default_rng(n).random((n, 28, 28), dtype=np.float32)
    grid = make_grid(torch.from_numpy(images).unsqueeze(1), nrow=ncols, padding=padding, pad_value=pad_value)[0]
    assert np.array_equal(_tile(images, ncols, padding, pad_value), grid.numpy())


def test_download_and_preprocess_import_no_torch():
    """Their start-up is the interpreter, numpy, and what they use: no 2 s of torch."""
    import subprocess
    import sys

    code = "import sys, stages.download, stages.preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_paths_table_is_dvc_yamls_outs():
    """stages/core/paths.py writes each stage's files once, in WRITES; dvc.yaml lists the
    same ones under the same stage (a folder of the table stands for the files listed in
    it), and errors name that stage as the one that rebuilds a file."""
    import yaml

    from stages.core import paths

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(paths.WRITES) == list(stages)
    for stage, spec in stages.items():
        outs = [Path(next(iter(o)) if isinstance(o, dict) else o) for o in spec.get("outs", []) + spec.get("metrics", [])]
        table = paths.WRITES[stage]
        assert [o for o in outs if not any(o == t or t in o.parents for t in table)] == [], stage
        assert [t for t in table if not any(o == t or t in o.parents for o in outs)] == [], stage
        assert all(paths.writer(o) == stage for o in outs), stage
    constants = [v for k, v in vars(paths).items() if k.isupper() and isinstance(v, Path)]
    assert sorted(constants) == sorted(path for outs in paths.WRITES.values() for path in outs)


def test_stages_take_every_path_from_the_table():
    """A path is written once besides dvc.yaml: in stages/core/paths.py, not in a stage."""
    literal = re.compile(r'Path\("(?!\.")')
    assert [p.name for p in STAGE_FILES if literal.search(p.read_text())] == []
