"""download: the four official IDX .gz files of both datasets (ood scores the other one).

Sources, in order: files already there and valid; ``$DATA_MIRROR``, a folder or URL in
torchvision's layout (as ../shared/data); torchvision's official mirrors. Every file is
checked by the sha256 of its decompressed content.
"""
from __future__ import annotations

import os
from pathlib import Path

from stages.core.cli import run
from stages.core.data import DATASETS, MIRROR_ENV, download, mirror_folder
from stages.core.paths import RAW_DIR


def main(params: dict, root: Path = Path(".")) -> dict:
    mirror = os.environ.get(MIRROR_ENV) or None
    fetched = {}
    for dataset in DATASETS:
        fetched[dataset] = download(dataset, root / RAW_DIR / dataset, mirror and mirror_folder(mirror, dataset))
        print(f"download: {dataset}: {len(fetched[dataset])} file(s) fetched, all 4 verified in {RAW_DIR / dataset}")
    return {"fetched": fetched}


if __name__ == "__main__":
    run(main, stage=True)
