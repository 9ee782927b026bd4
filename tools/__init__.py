"""Tools that read the pipeline's results (reports, the README, the plot page), outside the stages."""
from __future__ import annotations

from pathlib import Path


# The reports a tool writes (reports/<stem>*.json) and the command that writes them again.
REPORT_WRITERS = {"seeds": "make seeds-report", "sweep": "make sweep-report", "budget": "make budget-report",
                  "bottleneck": "make bottleneck"}


def read_report(path: Path) -> dict:
    """A tool's JSON report; a damaged or missing one is a one-line error naming the make
    target that writes it again (not a stage: no `dvc repro` rebuilds it)."""
    from stages.core.io import read_json

    target = next((t for stem, t in REPORT_WRITERS.items() if Path(path).name.startswith(stem)), None)
    return read_json(path, f"write it again with `{target}`" if target else None)
