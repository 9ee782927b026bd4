"""Every file the pipeline reads or writes between stages goes through here.

Writes go to a temporary file beside the destination, renamed into place on success,
so an interrupted stage or a full disk never leaves a half-written file, and the old
one stays. Inside ``all_or_nothing()`` (the command line, cli.run) the renames
wait for the stage's end, so a stage that fails at its third file leaves all of its old
files, not two new ones beside old ones. A missing or damaged input, or a failed write,
is one PipelineError naming the file and the command that fixes it.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import timing
from .errors import PipelineError
from .paths import rebuild_hint


class WriteError(PipelineError):
    """A file could not be written (disk full, read-only, no permission); the old one is left as it was."""


# What to do about a write that failed with this errno; any other errno: the generic advice.
_FIXES = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some disk space (or raise your quota)",
    errno.EROFS: "remount it read-write (or work in a writable copy)",
}
# The temporary files of an open all_or_nothing(), with their destinations, in write order.
_PENDING: contextvars.ContextVar[list[tuple[str, Path]] | None] = contextvars.ContextVar("pending", default=None)


def os_error(exc: BaseException | None) -> OSError | None:
    """The OSError with an errno behind ``exc``: itself, or the first in its chain of causes.

    Libraries wrap a failed write in their own exceptions: torch.save's zip writer turns
    ENOSPC into ``RuntimeError: unexpected pos ...`` as it closes the archive, with the
    OSError as its context.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _write_error(path: Path, e: OSError) -> WriteError:
    fix = _FIXES.get(e.errno, "check the folder can be written")
    return WriteError(f"cannot write {path}: {e.strerror or e}; {fix} and run the stage again "
                      f"(any earlier {path.name} is unchanged)")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success only
    (inside all_or_nothing(): when the whole stage has succeeded)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        yield Path(tmp)
        pending = _PENDING.get()
        if pending is None:
            os.replace(tmp, path)
        else:
            pending.append((tmp, path))
            tmp = None  # all_or_nothing() renames or removes it
    except Exception as e:
        cause = os_error(e)
        if cause is None:
            raise
        raise _write_error(path, cause) from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Hold every atomic write in this block as a temporary file and rename them all into
    place when the block ends without an error; on an error remove them, so every old
    file stays. A rename needs no space, so the renames at the end do not fail on a full disk."""
    pending: list[tuple[str, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
        _PENDING.reset(token)
        token = None
        while pending:
            tmp, path = pending[0]
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise _write_error(path, e) from None
            pending.pop(0)
    finally:
        if token is not None:
            _PENDING.reset(token)
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def require(path: Path, fix: str | None = None) -> Path:
    """``path``, or a clear error if an earlier stage (or what ``fix`` says) has not written it yet."""
    if not Path(path).exists():
        raise PipelineError(f"{path} is missing; "
                            + (fix or "run the stages before this one first (`dvc repro` runs them in order)"))
    return Path(path)


def damaged(path: Path, problem: str, fix: str | None = None) -> PipelineError:
    return PipelineError(f"{path} is damaged ({problem[:160]}); " + (fix or f"rebuild it with {rebuild_hint(path)}"))


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


def read_json(path: Path, fix: str | None = None) -> dict:
    """A JSON object; a missing or damaged file is a one-line error ending in how to write
    it again: ``fix``, or the stage that writes it."""
    with timing.phase("io"):
        try:
            data = json.loads(require(path, fix).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise damaged(path, f"not valid JSON: {e}", fix) from None
    if not isinstance(data, dict):
        raise damaged(path, "not a JSON object", fix)
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
    from matplotlib.figure import Figure

    try:
        with timing.phase("figures"), atomic_path(path) as tmp:
            # A fixed Software tag keeps the PNG bytes free of the matplotlib version.
            fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    finally:
        if isinstance(fig, Figure):  # closed on failure too: a failed stage keeps no figure open
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
