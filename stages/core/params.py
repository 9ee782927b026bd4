"""Reading params.yaml into the dataclasses of config.py.

The dataclasses have no defaults, so a missing, misspelled or unknown key is an error
that names its path in params.yaml (``train_ae.lr``); so is a top-level key no stage
of dvc.yaml reads, which would otherwise be ignored. A field declared with
:func:`top_level_field` (the training ``seed``) is read from the top level, not the section.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml

from .errors import PipelineError

PARAMS_FILE = "params.yaml"
DVC_FILE = "dvc.yaml"
TOP_LEVEL = "top_level"  # a dataclass field's metadata: its value is params.yaml's top-level key of its name
T = TypeVar("T")


class ParamError(PipelineError, ValueError):
    """A params.yaml value the pipeline cannot use: ``key`` is its path in params.yaml,
    ``problem`` what is wrong with it; the message is built from both."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem} (in {PARAMS_FILE})")
        self.key, self.problem = key, problem


def check(ok: bool, key: str, problem: str) -> None:
    """Raise a ParamError for ``key``: a dataclass field, which :func:`from_section`
    places in its section, or a top-level key."""
    if not ok:
        raise ParamError(key, problem)


def check_choice(value: str, choices: Iterable[str], key: str) -> None:
    choices = tuple(choices)
    check(value in choices, key, f"unknown value {value!r}; choose one of {', '.join(choices)}")


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def load_params(root: Path = Path(".")) -> dict:
    """params.yaml under ``root``; with dvc.yaml beside it, a top-level key that no
    stage lists under ``params`` is an error (a misspelled section would be ignored)."""
    path = Path(root) / PARAMS_FILE
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PipelineError(f"{path} is missing; restore it with `git checkout {PARAMS_FILE}`") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PipelineError(f"{path} is not valid YAML{where}: {problem}; fix it there "
                            f"(or `git checkout {PARAMS_FILE}` for the committed one)") from None
    if not isinstance(params, dict):
        raise ParamError("(top level)", "must be a mapping of keys to values")
    dvc_file = Path(root) / DVC_FILE
    if dvc_file.exists():
        known = read_params_by_stage(dvc_file)
        known_keys = set().union(*known.values())
        for key in params:
            if key not in known_keys:
                raise ParamError(key, f"unknown top-level key, read by no stage of {DVC_FILE}; "
                                      f"{_did_you_mean(key, known_keys)}known: {', '.join(sorted(known_keys))}")
    return params


def read_params_by_stage(dvc_file: Path) -> dict[str, set[str]]:
    """{stage: the top-level params.yaml keys it lists under ``params`` in dvc.yaml}."""
    stages = (yaml.safe_load(Path(dvc_file).read_text()) or {}).get("stages", {})
    return {name: {str(p).split(".")[0] for p in spec.get("params", [])} for name, spec in stages.items()}


def top_level(params: dict, key: str, hint: type | None = None) -> Any:
    """A top-level value (``device``, ``latent_dim``), of type ``hint`` if given; missing is an error naming it."""
    check(key in params, key, "missing top-level key")
    return params[key] if hint is None else _coerce(params[key], hint, key)


def top_level_field() -> Any:
    """A dataclass field that :func:`from_section` reads from params.yaml's top level, under
    its own name: one value that several sections' configs share (no default either)."""
    return dataclasses.field(metadata={TOP_LEVEL: True})


def from_section(cls: type[T], params: dict, name: str, others: Iterable[str] = (), **given: Any) -> T:
    """Build ``cls`` from the section ``params[name]`` and the values ``given`` (its fields
    that live elsewhere in params.yaml; a :func:`top_level_field` is read from the top
    level unless given): every other field of ``cls`` must be in the section, and nothing
    else but ``others``, the keys another config reads from it. An error inside names
    ``<name>.<field>``."""
    hints = typing.get_type_hints(cls)
    top = [f.name for f in dataclasses.fields(cls) if f.metadata.get(TOP_LEVEL)]
    given = {**{key: top_level(params, key, hints[key]) for key in top if key not in given}, **given}
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in given]
    known = [*fields, *others]
    section = params.get(name)
    if section is None:
        raise ParamError(name, f"missing section; it needs the keys {', '.join(known)}")
    if not isinstance(section, dict):
        raise ParamError(name, f"must be a section (a mapping) with the keys {', '.join(known)}, got {section!r}")
    for key in section:
        if key in top and key not in others:
            raise ParamError(f"{name}.{key}", f"unknown key; {key} is a top-level key of {PARAMS_FILE}, "
                                              f"one value for every section that uses it: set `{key}:` at the top")
        if key not in known:
            raise ParamError(f"{name}.{key}", f"unknown key; {_did_you_mean(key, known)}known keys of {name!r}: "
                                              f"{', '.join(sorted(known))}")
    values = dict(given)
    for key in fields:
        if key not in section:
            raise ParamError(f"{name}.{key}", "missing key")
        values[key] = _coerce(section[key], hints[key], f"{name}.{key}")
    try:
        return cls(**values)
    except ParamError as e:
        if e.key not in fields:  # a given value's, or already a full path
            raise
        raise ParamError(f"{name}.{e.key}", e.problem) from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a YAML value against a simple type hint; YAML reads 1e-3 as a string."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (item,) = set(typing.get_args(hint)) - {Ellipsis}
        if not isinstance(value, (list, tuple)):
            raise ParamError(key, f"must be a list, got {value!r}")
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
    raise ParamError(key, f"must be a finite float, got {value!r}" if hint is float
                     else f"must be {hint.__name__}, got {value!r}")
