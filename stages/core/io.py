"""Every file the pipeline writes goes through here.

Each writer writes a temporary file in the destination folder and renames it into
place, so an interrupted stage never leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from .params import PipelineError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _round(value: Any, digits: int = 6) -> Any:
    """Six significant digits: readable in `dvc metrics diff`, exact enough for MSE ~ 0.01."""
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_round(data), indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # uint8 arrays: compression costs seconds, saves little


def require(path: Path) -> Path:
    """``path``, or a clear error if an earlier stage has not written it yet."""
    if not Path(path).exists():
        raise PipelineError(f"{path} is missing; run the stages before this one first (`dvc repro` runs them in order)")
    return Path(path)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(require(path), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_figure(path: Path, fig: Any) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        # A fixed Software tag keeps the PNG bytes free of the matplotlib version.
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def save_checkpoint(path: Path, model: torch.nn.Module, config: dict) -> None:
    """The checkpoint carries the config that rebuilds the model (see models.build)."""
    # Contiguous: the same bytes whatever memory layout training used (channels-last).
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # A file object, not a path: torch.save names the archive after a path's stem,
        # and the temporary name would make the bytes differ from run to run.
        torch.save({"model": state, "config": config}, f)


def load_checkpoint(path: Path) -> dict:
    """``{"model": state_dict, "config": ...}`` from ``models/<name>.pt``, written by the
    stage ``train_<name>``; anything else (a truncated file, a pickled object, another
    format) is refused with one line that says which stage rebuilds it."""
    path = require(path)
    try:
        # weights_only: never unpickle arbitrary objects from a file.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (zip), OSError, EOFError...
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"[:160]
        raise PipelineError(f"{path} is not a checkpoint this pipeline can load ({reason}); "
                            f"rebuild it with `dvc repro --force train_{Path(path).stem}`") from None
    if not isinstance(checkpoint, dict) or set(checkpoint) != {"model", "config"}:
        raise PipelineError(f"{path} is not a checkpoint of this pipeline (expected the keys model and config); "
                            f"rebuild it with `dvc repro --force train_{Path(path).stem}`")
    return checkpoint


def fmt_metrics(metrics: dict, digits: int = 4) -> str:
    """One summary line: 'key=value key=value' with significant digits."""
    return " ".join(f"{k}={v:.{digits}g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
