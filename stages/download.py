"""download: the four official IDX .gz files of both datasets into data/raw/<dataset>/.

Both: the pipeline trains on ``data.dataset`` and the ood stage scores the other one's
test images. Sources, in order: files already there and valid; else ``$DATA_MIRROR`` if
set, a local folder or URL in torchvision's layout (``<mirror>/FashionMNIST/raw/``,
``<mirror>/MNIST/raw/``, as ../shared/data); else torchvision's official mirrors.
Every file is checked by the sha256 of its decompressed content (core/data.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from stages.core.data import DATASETS, MIRROR_ENV, download, mirror_folder
from stages.core.params import run

RAW_DIR = Path("data/raw")


def main(params: dict, root: Path = Path(".")) -> dict:
    mirror = os.environ.get(MIRROR_ENV) or None
    fetched = {}
    for dataset in DATASETS:
        fetched[dataset] = download(dataset, root / RAW_DIR / dataset, mirror and mirror_folder(mirror, dataset))
        print(f"download: {dataset}: {len(fetched[dataset])} file(s) fetched, all 4 verified in {RAW_DIR / dataset}")
    return {"fetched": fetched}


if __name__ == "__main__":
    run(main)
