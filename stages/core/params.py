"""params.yaml sections as dataclasses, validated at the stage boundary.

Each stage turns its section into a frozen dataclass with :func:`from_section`, so an
unknown or mistyped key fails loudly with a message naming it, and each dataclass
checks its own values in ``__post_init__`` with :class:`ParamError`.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

PARAMS_FILE = "params.yaml"
T = TypeVar("T")


class PipelineError(Exception):
    """An error the user can fix (a param, a data file); the stage exits with its message."""


class ParamError(PipelineError, ValueError):
    """A params.yaml value that the pipeline cannot use; the message names the key."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


def load_params(root: Path = Path(".")) -> dict:
    with open(Path(root) / PARAMS_FILE) as f:
        return yaml.safe_load(f) or {}


def from_section(cls: type[T], section: dict | None, name: str, **extra: Any) -> T:
    """Build ``cls`` from ``params[name]``; unknown and missing keys name the key.

    ``extra`` holds values that come from outside the section (top-level keys such as
    ``latent_dim``); they are not looked up in ``section``.
    """
    section = dict(section or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ParamError(
            f"unknown key {name}.{unknown[0]} in {PARAMS_FILE}; "
            f"known keys of '{name}': {', '.join(sorted(set(fields) - set(extra)))}",
            f"{name}.{unknown[0]}",
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for key, field in fields.items():
        if key in extra:  # named by its own key: top-level keys have no section
            values[key] = _coerce(extra[key], hints[key], key)
        elif key in section:
            values[key] = _coerce(section[key], hints[key], f"{name}.{key}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamError(f"missing key {name}.{key} in {PARAMS_FILE}", f"{name}.{key}")
    try:
        return cls(**values)
    except ParamError as e:
        if not e.key or e.key in extra or e.key.startswith(f"{name}."):  # top-level or qualified
            raise
        raise ParamError(str(e).replace(e.key, f"{name}.{e.key}", 1), f"{name}.{e.key}") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a YAML value against a simple type hint; YAML reads 1e-3 as a string."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (item,) = set(typing.get_args(hint)) - {Ellipsis}
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{key} must be a list, got {value!r}", key)
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            if math.isfinite(number := float(value)):
                return number
        except ValueError:
            pass
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint in (str, bool) and isinstance(value, hint):
        return value
    raise ParamError(f"{key} must be a finite {hint.__name__}, got {value!r}" if hint is float
                     else f"{key} must be {hint.__name__}, got {value!r}", key)


def check(ok: bool, key: str, message: str) -> None:
    """Raise a ParamError naming ``key`` (a field name; from_section adds the section)."""
    if not ok:
        raise ParamError(f"{key}: {message} (set it in {PARAMS_FILE})", key)


def check_choice(value: str, choices: typing.Iterable[str], key: str) -> None:
    choices = tuple(choices)
    check(value in choices, key, f"unknown value {value!r}; choose one of {', '.join(choices)}")


def run(main: Callable[[dict], dict]) -> None:
    """A stage's command line: load params.yaml, call ``main``, exit non-zero with a
    one-paragraph message (no traceback) on an error the user can fix."""
    module = main.__module__
    if module == "__main__":  # `python -m stages.<name>`: the spec keeps the real name
        module = sys.modules["__main__"].__spec__.name
    stage = module.rsplit(".", 1)[-1]
    try:
        main(load_params())
    except PipelineError as e:
        sys.exit(f"{stage} failed: {e}")
    except KeyboardInterrupt:  # every write is atomic: nothing half-written is left
        print(f"{stage} interrupted (Ctrl-C); no output of it was half-written; "
              "run `dvc repro` to start it again", file=sys.stderr)
        sys.exit(130)
