"""Tools that read the pipeline's results (reports, the README, the plot page), outside the stages."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable


def cli(main: Callable[..., Any], *args: Any) -> Any:
    """A tool's command line, as params.run is a stage's: every file it writes lands
    together when it succeeds, and an error the user can fix (a full disk, a damaged
    report) is one line, no traceback."""
    from stages.core.io import all_or_nothing
    from stages.core.params import PipelineError

    name = Path(sys.argv[0]).stem
    try:
        with all_or_nothing():
            return main(*args)
    except PipelineError as e:
        sys.exit(f"{name} failed: {e}")
