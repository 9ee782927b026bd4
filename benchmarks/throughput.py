"""Training throughput: our loop against the course's notebook loop, in images per second.

For each training stage (train_classifier: the MLP, train_ae: the AutoEncoder,
train_vae: the VAE) the model is built from params.yaml as the stage builds it and
trained twice, each time from a fresh seeded copy with the stage's optimizer:

- ours: ``stages.core.training.train_one_epoch`` over the in-memory tensors of
  data/processed/ (the train split, in the stage's batch size);
- notebook: the course's loop, a ``DataLoader`` (batch_size=100, shuffle=True) over
  torchvision's dataset read from the raw IDX files of data/raw/, per-sample transforms.

Timing (``time.perf_counter``) covers whole epochs, per-epoch costs included (shuffling,
a new DataLoader iterator); one-off setup (loading, model building, a few warm-up
batches) is left out. Prints both rates and their ratio per model. A benchmark, not a
test: nothing is asserted. Needs `dvc repro preprocess` to have run.

    make bench                                   # python benchmarks/throughput.py
    python benchmarks/throughput.py --limit 5000 --models train_ae --epochs 2
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms

from stages.core import data as core_data
from stages.core.data import DataConfig, PreprocessConfig, load_tensors, raw_files
from stages.core.models import MLP, VAE, AutoEncoder, MLPConfig, conv_config
from stages.core.params import PipelineError, from_section, load_params
from stages.core.training import TrainConfig, make_optimizer, resolve_device, seed_everything, train_one_epoch
from stages.train_ae import AEConfig
from stages.core.training import ClassifierConfig
from stages.train_vae import VAEConfig

PROCESSED_DIR = Path("data/processed")
RAW_DIR = Path("data/raw")
MODELS = ("train_classifier", "train_ae", "train_vae")
NOTEBOOK_BATCH = 100
WARMUP_BATCHES = 5


def build(name: str, params: dict, in_features: int, n_classes: int) -> tuple[nn.Module, TrainConfig]:
    """The stage's model and training config, exactly as stages/<name>.py builds them."""
    if name == "train_classifier":
        cfg = from_section(ClassifierConfig, params.get(name), name)
        return MLP(MLPConfig(in_features, cfg.hidden, cfg.dropout, n_classes)), cfg
    conv = conv_config(params)
    if name == "train_ae":
        cfg = from_section(AEConfig, params.get(name), name, normalize=conv.normalize)
        return AutoEncoder(conv, cfg.loss), cfg
    cfg = from_section(VAEConfig, params.get(name), name, normalize=conv.normalize)
    return VAE(conv, cfg.loss, cfg.beta), cfg


def torchvision_dataset(dataset: str, pre: PreprocessConfig) -> Dataset:
    """The course's dataset. With download=False torchvision wants the uncompressed IDX
    files in ``<root>/<Class>/raw/``: decompress the pipeline's .gz files into a temporary
    root (torchvision reads them into memory, so the root can go right after)."""
    cls = core_data.torchvision_dataset(dataset)
    steps = [transforms.Pad(pre.pad)] if pre.pad else []  # on the PIL image: a black border
    steps.append(transforms.ToTensor())
    if pre.normalize == "symmetric":
        steps.append(transforms.Normalize((0.5,), (0.5,)))
    with tempfile.TemporaryDirectory(prefix="throughput-") as root:
        raw = Path(root) / cls.__name__ / "raw"
        raw.mkdir(parents=True)
        for name in raw_files(dataset):
            src = RAW_DIR / dataset / name
            if not src.exists():
                raise PipelineError(f"{src} is missing; run `dvc repro download` first")
            with gzip.open(src, "rb") as fin, open(raw / name[: -len(".gz")], "wb") as fout:
                shutil.copyfileobj(fin, fout)
        return cls(root, train=True, transform=transforms.Compose(steps), download=False)


def notebook_epoch(model: nn.Module, opt: torch.optim.Optimizer, loader: DataLoader, device: torch.device,
                   max_batches: int | None = None) -> None:
    for x, y in itertools.islice(loader, max_batches):
        x, y = x.to(device), y.to(device)
        loss, _ = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def rate(epoch: Callable[[], None], n_images: int, epochs: int, device: torch.device) -> float:
    """Images per second over ``epochs`` calls of ``epoch``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    sync()
    return epochs * n_images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per model and loop (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    args = parser.parse_args()

    params = load_params()
    try:
        data_cfg = from_section(DataConfig, params.get("data"), "data")
        pre = from_section(PreprocessConfig, params.get("preprocess"), "preprocess")
        device = resolve_device(params.get("device", "auto"))
        data, classes = load_tensors(PROCESSED_DIR, pre, splits=("train",))
        notebook_data = torchvision_dataset(data_cfg.dataset, pre)
    except PipelineError as e:
        sys.exit(f"throughput: {e}")
    x, y = (t[: args.limit].to(device) for t in data["train"])
    if args.limit:
        notebook_data = Subset(notebook_data, range(min(args.limit, len(notebook_data))))
    loader = DataLoader(notebook_data, batch_size=NOTEBOOK_BATCH, shuffle=True)

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}")
    print(f"{data_cfg.dataset}: ours {len(x)} images/epoch (data/processed train split), "
          f"notebook {len(notebook_data)} (torchvision train set); {args.epochs} timed epoch(s) each")
    rows = []
    for name in args.models:
        results = {}
        for loop in ("ours", "notebook"):
            seed_everything(0)
            model, cfg = build(name, params, x[0].numel(), len(classes))
            model = model.to(device).train()
            opt = make_optimizer(model, cfg)
            if loop == "ours":
                gen = torch.Generator().manual_seed(cfg.seed)
                warm = WARMUP_BATCHES * cfg.batch_size
                train_one_epoch(model, opt, x[:warm], y[:warm], cfg.batch_size, gen, f"{name} warm-up")
                epoch = partial(train_one_epoch, model, opt, x, y, cfg.batch_size, gen, f"{name} ours")
                results[loop] = rate(epoch, len(x), args.epochs, device), cfg.batch_size
            else:
                notebook_epoch(model, opt, loader, device, WARMUP_BATCHES)
                epoch = partial(notebook_epoch, model, opt, loader, device)
                results[loop] = rate(epoch, len(notebook_data), args.epochs, device), NOTEBOOK_BATCH
        rows.append((name, results["ours"], results["notebook"]))

    print(f"\n{'model':<18}{'ours img/s':>12}{'(batch)':>9}{'notebook img/s':>16}{'(batch)':>9}{'ours/notebook':>15}")
    for name, (ours, b_ours), (nb, b_nb) in rows:
        print(f"{name:<18}{ours:>12,.0f}{b_ours:>9}{nb:>16,.0f}{b_nb:>9}{ours / nb:>14.1f}x")


if __name__ == "__main__":
    main()
