"""The one error a user can fix (a param, a data file, a full disk): every stage and tool
exits on it with its message, one line and no traceback (stages.core.cli)."""
from __future__ import annotations


class PipelineError(Exception):
    """An error the user can fix; the message names what is wrong and how to fix it."""
