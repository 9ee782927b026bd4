"""Where a stage's seconds go: start-up (its imports), training epochs, the train loss
re-evaluated after each epoch, the VAE's likelihood bound, file I/O, figures, and the rest.

`make bench` sets ``STAGE_TIMES`` to a file; each stage then appends one JSON line with
its split when it ends (``cli.run``). Nothing is written otherwise.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Iterator

TIMES_ENV = "STAGE_TIMES"
PHASES = ("epochs", "train_eval", "bound", "io", "figures")
spent = dict.fromkeys(PHASES, 0.0)
_active: list[str] = []


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the block's seconds under ``name``; a phase inside another counts for the outer one."""
    if _active:
        yield
        return
    _active.append(name)
    start = time.perf_counter()
    try:
        yield
    finally:
        spent[name] += time.perf_counter() - start
        _active.pop()


def record(stage: str, startup: float, seconds: float) -> None:
    """Append the stage's split to $STAGE_TIMES, if set: ``startup`` from the stages
    package's first import to main, ``seconds`` main's own."""
    path = os.environ.get(TIMES_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"stage": stage, "startup": startup, "main": seconds, **spent}) + "\n")
