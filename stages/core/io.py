"""Every file the pipeline reads or writes between stages goes through here.

Writes go to a temporary file beside the destination, renamed into place on success,
so an interrupted stage or a full disk never leaves a half-written file, and the old
one stays. A missing or damaged input, or a failed write, is one PipelineError naming
the file and the command that fixes it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import timing
from .params import PipelineError
from .paths import rebuild_hint


class WriteError(PipelineError):
    """A file could not be written (disk full, no permission); the old one is left as it was."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success only."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}; "
                         f"{'free some disk space' if e.errno in (errno.ENOSPC, errno.EDQUOT) else 'check the folder can be written'} "
                         f"and run the stage again (any earlier {path.name} is unchanged)") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def require(path: Path) -> Path:
    """``path``, or a clear error if an earlier stage has not written it yet."""
    if not Path(path).exists():
        raise PipelineError(f"{path} is missing; run the stages before this one first (`dvc repro` runs them in order)")
    return Path(path)


def damaged(path: Path, problem: str) -> PipelineError:
    return PipelineError(f"{path} is damaged ({problem[:160]}); rebuild it with {rebuild_hint(path)}")


def _round(value: Any, digits: int = 6) -> Any:
    """Six significant digits: readable in `dvc metrics diff`, exact enough for MSE ~ 0.01."""
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


def write_text(path: Path, text: str) -> None:
    with timing.phase("io"), atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(_round(data), indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    with timing.phase("io"):
        try:
            data = json.loads(require(path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise damaged(path, f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise damaged(path, "not a JSON object")
    return data


def write_csv(path: Path, frame: Any) -> None:
    with timing.phase("io"), atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with timing.phase("io"), atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # uint8 arrays: compression costs seconds, saves little


def load_arrays(path: Path, keys: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, which must hold ``keys``; truncated or foreign files are refused."""
    with timing.phase("io"):
        try:
            with np.load(require(path), allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
            raise damaged(path, f"{type(e).__name__}: {e}") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise damaged(path, f"lacks the arrays {', '.join(missing)}")
    return arrays


def save_figure(path: Path, fig: Any) -> None:
    import matplotlib.pyplot as plt

    with timing.phase("figures"), atomic_path(path) as tmp:
        # A fixed Software tag keeps the PNG bytes free of the matplotlib version.
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def save_checkpoint(path: Path, state: dict, config: dict) -> None:
    """``{"model": state_dict, "config": ...}``: the config rebuilds the model (models.from_config)."""
    import torch

    # Contiguous: the same bytes whatever memory layout training used (channels-last).
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with timing.phase("io"), atomic_path(path) as tmp, open(tmp, "wb") as f:
        # A file object, not a path: torch.save names the archive after a path's stem,
        # and the temporary name would make the bytes differ from run to run.
        torch.save({"model": state, "config": config}, f)


def load_checkpoint(path: Path) -> dict:
    """``{"model": state_dict, "config": ...}``; anything else (a truncated file, a pickled
    object, another format) is refused with one line that says which stage rebuilds it."""
    import torch

    path = require(path)
    with timing.phase("io"):
        try:
            # weights_only: never unpickle arbitrary objects from a file.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError, RuntimeError (zip), OSError, EOFError...
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"
            raise PipelineError(f"{path} is not a checkpoint this pipeline can load ({reason[:160]}); "
                                f"rebuild it with {rebuild_hint(path)}") from None
    if not isinstance(checkpoint, dict) or set(checkpoint) != {"model", "config"}:
        raise PipelineError(f"{path} is not a checkpoint of this pipeline (expected the keys model and config); "
                            f"rebuild it with {rebuild_hint(path)}")
    return checkpoint


def fmt_metrics(metrics: dict, digits: int = 4) -> str:
    """One summary line: 'key=value key=value' with significant digits."""
    return " ".join(f"{k}={v:.{digits}g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
