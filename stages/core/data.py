"""Datasets: download with integrity checks, IDX parsing and the split arrays.

numpy only: the download stage imports no torch (inputs.py turns splits into tensors).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.error import URLError

import numpy as np

from . import config
from .io import load_arrays
from .errors import PipelineError

SPLITS = ("train", "val", "test")
IMAGE_SIDE = 28
N_CLASSES = 10

# sha256 of the *decompressed* IDX files: a content hash that holds whatever gzip
# settings a mirror used (the md5 sums torchvision checks are of the .gz bytes).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
# torchvision's dataset classes own the mirrors, file names and class names; their
# names are also the folder names in shared/data/SHA256SUMS.
TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DATASETS = config.DATASETS
MIRROR_ENV = "DATA_MIRROR"
SUMS_ENV = "DATA_SHA256SUMS"


class DataError(PipelineError):
    """A data file that is missing, corrupted or malformed; the message says what to do."""


def torchvision_dataset(dataset: str) -> type:
    """torchvision's dataset class, imported only by the stages that need it (~1 s)."""
    import torchvision.datasets

    return getattr(torchvision.datasets, TORCHVISION[dataset])


def download_url(url: str, root: str, filename: str) -> None:
    from torchvision.datasets.utils import download_url as torchvision_download_url

    torchvision_download_url(url, root, filename)


# torchvision's class names (a test holds them equal), written out because importing
# torchvision costs the preprocess stage 2 s.
CLASSES = {
    "mnist": ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
              "8 - eight", "9 - nine"],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


def class_names(dataset: str) -> list[str]:
    return list(CLASSES[dataset])


def slug(name: str) -> str:
    """'T-shirt/top' -> 't_shirt_top': a class name usable in a metric key."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# --------------------------------------------------------------------------- download
def raw_files(dataset: str) -> list[str]:
    """The four official ``.gz`` file names (torchvision's ``resources``; a test holds it)."""
    return [f"{name}.gz" for name in SHA256[dataset]]


def expected_sha256(dataset: str) -> dict[str, str]:
    """The hash table in this file, or the one a ``DATA_SHA256SUMS`` file gives.

    The override takes ``sha256sum`` lines naming ``<TorchvisionFolder>/raw/<file>``
    (the layout of shared/data/SHA256SUMS); tests use it for synthetic files.
    """
    sums_file = os.environ.get(SUMS_ENV)
    if not sums_file:
        return SHA256[dataset]
    folder = TORCHVISION[dataset]
    table = {}
    for number, line in enumerate(Path(sums_file).read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            try:
                digest, path = line.split()
            except ValueError:
                raise DataError(f"{sums_file}:{number}: expected '<sha256>  <path>', got {line!r}") from None
            parts = Path(path).parts
            if parts[0] == folder:
                table[parts[-1]] = digest
    if sorted(table) != sorted(SHA256[dataset]):
        raise DataError(f"{SUMS_ENV}={sums_file} must list the four {folder} IDX files, found {sorted(table)}")
    return table


def verify(path: Path, expected: str) -> str | None:
    """None if the gzip file decompresses to content with sha256 ``expected``; else why not."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as e:  # truncated or corrupt gzip, or an HTML page
        return f"cannot be decompressed ({e})"
    actual = digest.hexdigest()
    return None if actual == expected else f"has sha256 {actual} after decompression, expected {expected}"


def _fetch(name: str, dest_dir: Path, sources: list[str]) -> list[str]:
    """Fetch ``name`` from the first source that has it; return the errors of the others."""
    errors = []
    for source in sources:
        try:
            if re.match(r"^[a-z]+://", source):
                download_url(f"{source.rstrip('/')}/{name}", str(dest_dir), name)
            else:
                shutil.copyfile(Path(source) / name, dest_dir / name)
            return errors
        except (OSError, URLError, RuntimeError) as e:
            errors.append(f"  {source}: {e}")
    return errors


def mirror_folder(mirror: str, dataset: str) -> str:
    """Where a mirror in torchvision's layout (a local folder or a URL) keeps ``dataset``'s
    files: ``<mirror>/<TorchvisionName>/raw``, as in ../shared/data."""
    return f"{mirror.rstrip('/')}/{TORCHVISION[dataset]}/raw"


def download(dataset: str, raw_dir: Path, mirror: str | None = None) -> list[str]:
    """Make ``raw_dir`` hold the four verified ``.gz`` files of ``dataset``.

    Files already present and valid are kept without touching the network. The others
    come from ``mirror`` (a local folder or a URL holding the four files) if given, else from torchvision's
    official mirrors in turn. Everything is fetched into a temporary folder and checked
    first: only when all files pass are they moved into ``raw_dir``, so a failure leaves
    ``raw_dir`` as it was. Returns the names of the files fetched.
    """
    sums = expected_sha256(dataset)
    sources = [mirror] if mirror else list(torchvision_dataset(dataset).mirrors)
    raw_dir = Path(raw_dir)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    missing = [n for n in raw_files(dataset) if not (raw_dir / n).exists() or verify(raw_dir / n, sums[n[:-3]])]
    problems = []
    with tempfile.TemporaryDirectory(dir=raw_dir.parent, prefix=".download-") as tmp:
        tmp = Path(tmp)
        for name in missing:
            errors = _fetch(name, tmp, sources)
            if not (tmp / name).exists():
                problems.append(f"{name}: could not be fetched:\n" + "\n".join(errors))
            elif why := verify(tmp / name, sums[name[:-3]]):
                problems.append(f"{name} from {sources[0] if mirror else 'the official mirrors'} {why}")
        if problems:
            raise DataError(
                f"{dataset}: {len(problems)} file(s) failed; {raw_dir} was left unchanged.\n"
                + "\n".join(problems)
                + f"\nWhat to do: replace the file(s) in the mirror with the official ones, or point "
                f"{MIRROR_ENV} at a folder or URL in torchvision's layout that holds the official files "
                f"({TORCHVISION[dataset]}/raw/<file> for {dataset}), e.g. {MIRROR_ENV}=../shared/data."
            )
        raw_dir.mkdir(exist_ok=True)
        for name in missing:
            os.replace(tmp / name, raw_dir / name)
    return missing


# ------------------------------------------------------------------------------ IDX
IDX_MAGIC = {1: 0x0801, 3: 0x0803}  # unsigned bytes; 1 dim for labels, 3 for images


def _not_official(problem: str, what: str = "an official IDX file: replace it with the official one") -> DataError:
    # It passed the download check, so the hash table that let it in is not the official one.
    return DataError(f"{problem}; not {what} (unset {SUMS_ENV} or fix its hash table, then rerun the download stage)")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    if not Path(path).exists():
        raise DataError(f"{path} is missing; run the download stage (`dvc repro download`)")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be decompressed ({e}); rerun the download stage") from e
    header = 4 + 4 * ndim
    magic = int.from_bytes(data[:4], "big")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(data) < header:
        problem = f"{len(data)} bytes is too short for an IDX header ({header} bytes)"
    elif magic != IDX_MAGIC[ndim]:
        problem = f"magic number {magic:#06x}, expected {IDX_MAGIC[ndim]:#06x} (ubyte, {ndim}-d)"
    elif len(data) - header != size:
        problem = f"header says {shape} = {size} bytes of data, file holds {len(data) - header}"
    else:
        return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()  # writable
    raise _not_official(f"{path}: {problem}")


def read_raw(raw_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``train`` or ``t10k``."""
    images_path = Path(raw_dir) / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = Path(raw_dir) / f"{prefix}-labels-idx1-ubyte.gz"
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        problem = (f"{images_path}: dimensions {images.shape} in the header: images are "
                   f"{images.shape[1]}x{images.shape[2]} pixels, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    elif len(images) != len(labels):
        problem = (f"{raw_dir}/{prefix}: {len(images)} images but {len(labels)} labels "
                   f"({images_path.name} and {labels_path.name} disagree on the count in their headers)")
    elif labels.size and labels.max() >= N_CLASSES:
        problem = f"{raw_dir}/{prefix}: label {labels.max()} out of range 0-{N_CLASSES - 1} in {labels_path.name}"
    else:
        return images, labels.astype(np.int64)
    raise _not_official(problem, "official IDX files: replace them with the official ones")


@dataclass
class Split:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    classes: list[str]
    dataset: str  # mnist or fashion_mnist


def load_split(processed_dir: Path, split: str) -> Split:
    path = Path(processed_dir) / f"{split}.npz"
    arrays = load_arrays(path, ("images", "labels", "classes", "dataset"))
    return Split(arrays["images"], arrays["labels"], [str(c) for c in arrays["classes"]], str(arrays["dataset"]))


