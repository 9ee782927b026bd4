"""The one command line of every stage and tool: ``run(main)``.

A stage (``stage=True``) gets params.yaml and has its seconds recorded; every file a
stage or a tool writes lands together when it succeeds (io.all_or_nothing), and an
error the user can fix is one line, no traceback.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from .. import STARTED
from . import timing
from .errors import PipelineError
from .io import all_or_nothing
from .params import load_params


def run(main: Callable[..., Any], *args: Any, stage: bool = False) -> Any:
    """Call ``main(*args)`` (a stage: ``main(params, *args)``) and exit non-zero with a
    one-line message on a PipelineError or Ctrl-C, leaving its files as they were."""
    module = main.__module__
    if module == "__main__":  # `python -m pkg.<name>`: the spec keeps the real name
        module = sys.modules["__main__"].__spec__.name
    name = module.rsplit(".", 1)[-1]
    start = time.perf_counter()
    try:
        with all_or_nothing():  # a failed command leaves every old file of it, none half-new
            result = main(load_params(), *args) if stage else main(*args)
    except PipelineError as e:
        sys.exit(f"{name} failed: {e}")
    except KeyboardInterrupt:  # all_or_nothing: every file is as it was
        print(f"{name} interrupted (Ctrl-C); its files are as they were before it started"
              + ("; run `dvc repro` to start it again" if stage else ""), file=sys.stderr)
        sys.exit(130)
    if stage:
        timing.record(name, start - STARTED, time.perf_counter() - start)
    return result
