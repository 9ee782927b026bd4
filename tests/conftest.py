"""Shared fixtures: synthetic IDX files for both datasets and the real params, shrunk.

The synthetic images are 28x28 uint8 with a bright class-dependent bar plus noise, so
that classifiers and autoencoders have something to learn in a few epochs.
"""
from __future__ import annotations

import copy
import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from stages.core.data import DATASETS, MIRROR_ENV, SUMS_ENV, TORCHVISION, mirror_folder
from stages.core.params import load_params

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 300, 100  # per split; 10 classes, balanced


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize a uint8 array in the IDX format (magic 0x08 0x<ndim>, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, c in enumerate(labels):
        images[i, 2 + 2 * c : 6 + 2 * c, 4:24] = 220  # a horizontal bar whose height encodes the class
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_dataset(folder: Path, seed: int = 0) -> dict[str, str]:
    """Write the four .gz files; return {uncompressed name: sha256}."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images, labels = synthetic_images(n, seed + n)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            raw = idx_bytes(array)
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
            sums[name] = hashlib.sha256(raw).hexdigest()
    return sums


def dataset_dir(mirror: Path, dataset: str) -> Path:
    """Where a mirror in torchvision's layout keeps ``dataset``'s four files."""
    return Path(mirror_folder(str(mirror), dataset))


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """A local mirror in shared/data's layout: <mirror>/<TorchvisionName>/raw/ holds
    synthetic files for each dataset, and <mirror>/SHA256SUMS lists their hashes."""
    root = tmp_path_factory.mktemp("mirror")
    lines = []
    for seed, dataset in enumerate(DATASETS):
        sums = write_dataset(dataset_dir(root, dataset), seed)
        folder = TORCHVISION[dataset]
        lines += [f"{digest}  {folder}/raw/{name}" for name, digest in sums.items()]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def synthetic_sums(mirror, monkeypatch) -> Path:
    """Make the download stage accept the synthetic files' hashes."""
    monkeypatch.setenv(SUMS_ENV, str(mirror / "SHA256SUMS"))
    return mirror / "SHA256SUMS"


def shrink(params: dict) -> dict:
    """The real params.yaml, shrunk to tiny sizes: same keys, seconds of CPU."""
    p = copy.deepcopy(params)
    p["device"] = "cpu"
    p["model"].update(widths=[4, 8], hidden=16)
    for stage in ("train_classifier", "train_ae", "train_vae"):
        p[stage].update(epochs=2, batch_size=64)
    p["train_classifier"]["hidden"] = [32, 16]
    p["train_vae"].update(iwae_k=8, iwae_images=40)
    p["ood"]["images"] = 40  # at most train_vae.iwae_images: ood reads train_vae's bounds
    return p


def committed_params() -> dict:
    """HEAD's params.yaml: the tests stay the same when a user's `dvc exp run -S ...` has
    left other values in the workspace's (they are what the test suite is written for)."""
    import subprocess

    import yaml

    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True)
    return yaml.safe_load(shown.stdout) if shown.returncode == 0 else load_params(REPO)


TINY = shrink(committed_params())


@pytest.fixture(scope="session")
def tiny() -> dict:
    """The shrunk params, shared by session- and module-scoped fixtures: never mutate it."""
    return TINY


@pytest.fixture
def params() -> dict:
    """The shrunk params, a copy each test may change."""
    return copy.deepcopy(TINY)


class Reads(dict):
    """params that note which keys a stage reads, as dvc.yaml names them: a top-level
    value by its name (``device``), a section's key by its path (``ood.images``)."""

    def __init__(self, params: dict, prefix: str = "", keys_read: set[str] | None = None):
        self.prefix, self.keys_read = prefix, set() if keys_read is None else keys_read
        super().__init__({k: Reads(v, f"{prefix}{k}.", self.keys_read) if isinstance(v, dict) else v
                          for k, v in params.items()})

    def _read(self, key, value):
        if not isinstance(value, Reads):  # a section counts by the keys read from it
            self.keys_read.add(f"{self.prefix}{key}")
        return value

    def __getitem__(self, key):
        return self._read(key, super().__getitem__(key))

    def get(self, key, default=None):
        return self._read(key, super().get(key, default)) if key in self else default


def listed_keys(params: dict, listed: set[str]) -> set[str]:
    """dvc.yaml's ``params`` entries of a stage as key paths: a section stands for all its keys."""
    out = set()
    for entry in listed:
        value = params.get(entry)
        out |= {f"{entry}.{k}" for k in value} if isinstance(value, dict) else {entry}
    return out


# The configs have no defaults: tests start from the shrunk params.yaml and name only
# what they vary.
def conv_cfg(**changes):
    """The AE's config from the tiny params; ``normalize`` and ``pad`` change its input."""
    from stages.core.builders import conv_config

    base = conv_config(TINY, "train_ae", TINY["train_ae"]["loss"])
    inp = {k: changes.pop(k) for k in ("normalize", "pad") if k in changes}
    if inp:
        changes["input"] = dataclasses.replace(base.input, **inp)
    return dataclasses.replace(base, **changes)


def vae_cfg(beta: float = 1.0, **changes):
    from stages.core.models import VAEModelConfig

    return VAEModelConfig(**vars(conv_cfg(**changes)), beta=beta)


def train_cfg(**changes):
    from stages.core.config import TrainConfig
    from stages.core.params import TOP_LEVEL

    section = TINY["train_ae"]
    return TrainConfig(**{**{f.name: (TINY if f.metadata.get(TOP_LEVEL) else section)[f.name]
                             for f in dataclasses.fields(TrainConfig)}, **changes})


def mlp_cfg(**changes):
    from stages.core.models import MLPConfig

    section = TINY["train_classifier"]
    base = dict(in_features=28 * 28, hidden=tuple(section["hidden"]), dropout=section["dropout"], n_classes=10,
                input=None)
    return MLPConfig(**{**base, **changes})


@pytest.fixture(scope="session")
def processed(tmp_path_factory, mirror, tiny) -> Path:
    """A project root where download and preprocess ran once, on the synthetic mirror and
    never the network. Tests read it, or copy it to run later stages: never write into it."""
    from stages import download, preprocess
    from stages.core import data

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"test tried the network: {url}")

    root = tmp_path_factory.mktemp("processed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SUMS_ENV, str(mirror / "SHA256SUMS"))
        mp.setenv(MIRROR_ENV, str(mirror))
        mp.setattr(data, "download_url", refuse)
        download.main(tiny, root)
        preprocess.main(tiny, root)
    return root
