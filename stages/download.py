"""download: the four official IDX .gz files of ``data.dataset`` into data/raw/<dataset>/.

Sources, in order: files already there and valid; else ``$DATA_MIRROR`` (a local folder
or URL with the official file names) if set; else torchvision's official mirrors.
Every file is checked by the sha256 of its decompressed content (core/data.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from stages.core.data import MIRROR_ENV, DataConfig, download
from stages.core.params import from_section, run

RAW_DIR = Path("data/raw")


def main(params: dict, root: Path = Path(".")) -> dict:
    cfg = from_section(DataConfig, params, "data")
    fetched = download(cfg.dataset, root / RAW_DIR / cfg.dataset, os.environ.get(MIRROR_ENV) or None)
    print(f"download: {cfg.dataset}: {len(fetched)} file(s) fetched, all 4 verified in {RAW_DIR / cfg.dataset}")
    return {"fetched": fetched}


if __name__ == "__main__":
    run(main)
