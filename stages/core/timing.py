"""Where a stage's seconds go: training epochs, file I/O, figures, and the rest.

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
PHASES = ("epochs", "io", "figures")
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


def record(stage: str, seconds: float) -> None:
    """Append the stage's split to $STAGE_TIMES, if set."""
    path = os.environ.get(TIMES_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"stage": stage, "main": seconds, **spent}) + "\n")
