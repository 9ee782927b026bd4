"""`make bench`: one table of where the time goes on this machine.

1. Where a latent experiment's seconds go: ``dvc exp run -S latent_dim=8`` (or the
   ``-S`` given) in a temporary clone of HEAD that shares this checkout's DVC cache, so
   the stages it reruns are those a user's experiment reruns. Each stage reports its
   start-up (imports), training epochs, train-loss re-evaluation, IWAE bound, file I/O
   and figures (stages/core/timing.py); DVC itself is the run's wall time less its
   stages'. ``--no-dvc`` (a GPU machine with only torch and friends,
   benchmarks/gpu_check.sh): every stage in DAG order as `python -m stages.<name>`, in a
   temporary copy of the project, on the data/raw of this checkout (or $DATA_MIRROR).
2. Training throughput, images per second over one timed epoch of the train split:
   ours (``train_one_epoch`` on in-memory tensors, channels-last, the stage's batch
   size) against the course's notebook loop (a ``DataLoader``, batch 100, over
   torchvision's dataset with per-sample transforms), same model, optimizer and device.
3. The fp32 matmul rate of this device (a 2048^3 matmul), and the share of it that the
   AE training step reaches: its FLOPs per image (counted by
   ``torch.utils.flop_counter``) times our images per second.

A benchmark, not a test: it asserts nothing. `--skip-stages` for the throughput part
alone (on this checkout's data/processed); `--device cuda` to force the GPU (and no dvc).
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]

from stages.core import builders as core_builders
from stages.core import data as core_data
from stages.core import timing
from stages.core.config import DataConfig, InputConfig
from stages.core.data import raw_files
from stages.core.inputs import load_tensors
from stages.core.device import on_device, resolve_device
from stages.core.errors import PipelineError
from stages.core.params import from_section, load_params, top_level
from stages.core.training import make_optimizer, train_one_epoch

STAGES = ["download", "preprocess", "train_classifier", "train_ae", "train_vae", "evaluate", "downstream", "ood"]
NOTEBOOK_BATCH = 100
WARMUP_BATCHES = 5


# ------------------------------------------------------------------------ stage seconds
def copy_project(root: Path, params: dict) -> None:
    """The stages and params of this checkout, and its data/raw (or $DATA_MIRROR's), in ``root``."""
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = REPO / "data/raw"
    if all((raw / d).is_dir() for d in core_data.DATASETS):  # verified again by the download stage, not fetched
        shutil.copytree(raw, root / "data/raw")
    elif not os.environ.get(core_data.MIRROR_ENV):
        sys.exit(f"bench: {raw} lacks a dataset and DATA_MIRROR is not set; run `dvc repro download` "
                 "or set DATA_MIRROR to a folder in torchvision's layout, such as ../shared/data")


def stage_seconds(root: Path) -> dict[str, dict[str, float]]:
    """Run every stage in ``root`` (:func:`copy_project`) as `dvc repro` would; per stage
    the split of its seconds (:func:`split`)."""
    times = root / "stage_times.jsonl"
    for stage in STAGES:
        result = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=root, env={**os.environ,
                                timing.TIMES_ENV: str(times)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode:
            sys.exit(f"bench: stage {stage} failed:\n{result.stdout[-2000:]}")
        print(f"  {stage}: {split(json.loads(times.read_text().splitlines()[-1]))['wall']:.1f} s", flush=True)
    return {r["stage"]: split(r) for r in map(json.loads, times.read_text().splitlines())}


def experiment_seconds(root: Path, sets: list[str], name: str | None = None
                       ) -> tuple[dict[str, dict[str, float]], float]:
    """`dvc exp run -S <sets>` in ``root``, a clone of HEAD that shares this checkout's DVC
    cache: per stage it ran the split of its seconds, and the run's wall seconds. With a
    ``name``, the experiment is kept in this checkout under it (for `make compare`)."""
    git = lambda *a, **k: subprocess.run(["git", *a], capture_output=True, text=True, **k)  # noqa: E731
    if git("clone", "--quiet", "--shared", str(REPO), str(root)).returncode:
        sys.exit("bench: cannot clone this checkout (is it a git repository?); use --no-dvc")
    cache = subprocess.run(["dvc", "cache", "dir"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    for cmd in (["cache", "dir", "--local", cache], ["checkout", "--quiet"]):
        if subprocess.run(["dvc", *cmd], cwd=root, capture_output=True, text=True).returncode:
            sys.exit("bench: this checkout's DVC cache lacks HEAD's outputs; run `dvc repro` (or `dvc pull`) first")
    status = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True).stdout
    if json.loads(status or "{}"):
        sys.exit("bench: HEAD's dvc.lock does not match its code and params, so the experiment would rerun "
                 "more than a latent experiment does; commit a full `dvc repro` first")
    times = root / "stage_times.jsonl"
    start = time.perf_counter()
    result = subprocess.run(["dvc", "exp", "run", *(["--name", name] if name else []),
                             *(a for kv in sets for a in ("-S", kv))], cwd=root,
                            env={**os.environ, timing.TIMES_ENV: str(times)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"bench: dvc exp run failed:\n{result.stdout[-2000:]}")
    if name and subprocess.run(["dvc", "exp", "push", "--no-cache", "origin", name], cwd=root).returncode:
        sys.exit(f"bench: cannot keep the experiment {name} in this checkout (dvc exp push failed)")
    return {r["stage"]: split(r) for r in map(json.loads, times.read_text().splitlines())}, wall


def split(recorded: dict) -> dict[str, float]:
    """A stage's seconds: wall (from the stages package's first import), start-up (the
    imports), each phase, and other (its own seconds outside the phases)."""
    phases = {name: recorded[name] for name in timing.PHASES}
    return {"wall": recorded["startup"] + recorded["main"], "start-up": recorded["startup"], **phases,
            "other": recorded["main"] - sum(phases.values())}


SPLIT = ("wall", "start-up", *timing.PHASES, "other")


def split_table(seconds: dict[str, dict[str, float]], wall: float | None = None) -> str:
    """Markdown: one row per stage, DVC's own seconds (``wall``: the whole run's, when DVC
    ran it), the total, and the share spent in training epochs."""
    rows = dict(seconds)
    if wall is not None:
        rows["DVC itself"] = {k: 0.0 for k in SPLIT} | {"wall": wall - sum(r["wall"] for r in seconds.values())}
        rows["DVC itself"]["other"] = rows["DVC itself"]["wall"]
    total = {k: sum(row[k] for row in rows.values()) for k in SPLIT}
    lines = ["| part | " + " | ".join(SPLIT) + " |", "|---" * (len(SPLIT) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{row[k]:.1f}" for k in SPLIT) + " |" for name, row in
              {**rows, "**total**": total}.items()]
    lines.append(f"\nIn training epochs: {total['epochs']:.1f} s, {total['epochs'] / total['wall']:.0%} of the "
                 f"{total['wall']:.1f} s; everything else: {total['wall'] - total['epochs']:.1f} s.")
    return "\n".join(lines)


# ------------------------------------------------------------------------- throughput
def torchvision_dataset(dataset: str, pre: InputConfig, raw_dir: Path) -> Dataset:
    """The course's dataset. With download=False torchvision wants the uncompressed IDX
    files in ``<root>/<Class>/raw/``: decompress the pipeline's .gz files into a temporary
    root (torchvision reads them into memory, so the root can go right after)."""
    from torchvision import transforms

    cls = core_data.torchvision_dataset(dataset)
    steps = [transforms.Pad(pre.pad)] if pre.pad else []  # on the PIL image: a black border
    steps.append(transforms.ToTensor())
    if pre.normalize == "symmetric":
        steps.append(transforms.Normalize((0.5,), (0.5,)))
    with tempfile.TemporaryDirectory(prefix="bench-") as root:
        raw = Path(root) / cls.__name__ / "raw"
        raw.mkdir(parents=True)
        for name in raw_files(dataset):
            src = raw_dir / dataset / name
            if not src.exists():
                raise PipelineError(f"{src} is missing; run `dvc repro download` first")
            with gzip.open(src, "rb") as fin, open(raw / name[: -len(".gz")], "wb") as fout:
                shutil.copyfileobj(fin, fout)
        return cls(root, train=True, transform=transforms.Compose(steps), download=False)


def notebook_epoch(model: nn.Module, opt: torch.optim.Optimizer, loader: DataLoader, device: torch.device,
                   max_batches: int | None = None) -> None:
    """The course's loop: a DataLoader, a `.to(device)` and a step per batch."""
    for x, y in itertools.islice(loader, max_batches):
        x, y = x.to(device), y.to(device)
        loss, _ = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def builders(params: dict, in_features: int, n_classes: int) -> dict[str, Callable]:
    """Each training stage's own builder: the model and config exactly as the stage has them."""
    inp = core_builders.input_config(params)
    return {"train_classifier": partial(core_builders.classifier, params, in_features, n_classes, inp),
            "train_ae": partial(core_builders.autoencoder, params), "train_vae": partial(core_builders.vae, params)}


def throughput(params: dict, device: torch.device, processed: Path, raw_dir: Path) -> dict[str, tuple]:
    """{stage: (ours img/s, our batch, notebook img/s)}."""
    data_cfg = from_section(DataConfig, params, "data")
    pre = from_section(InputConfig, params, "input")
    data, classes = load_tensors(processed, pre, splits=("train",))
    loader = DataLoader(torchvision_dataset(data_cfg.dataset, pre, raw_dir), batch_size=NOTEBOOK_BATCH, shuffle=True)
    rows = {}
    for name, build in builders(params, data["train"][0][0].numel(), len(classes)).items():
        model, cfg = build()
        model = model.to(device).train()
        x, y = on_device(model, *data["train"])
        opt = make_optimizer(model, cfg)
        gen = torch.Generator().manual_seed(cfg.seed)
        warm = WARMUP_BATCHES * cfg.batch_size
        train_one_epoch(model, opt, x[:warm], y[:warm], cfg.batch_size, gen)
        ours = len(x) / timed(partial(train_one_epoch, model, opt, x, y, cfg.batch_size, gen), device)

        model, cfg = build()
        model = model.to(device).train()
        opt = make_optimizer(model, cfg)
        notebook_epoch(model, opt, loader, device, WARMUP_BATCHES)
        notebook = len(loader.dataset) / timed(partial(notebook_epoch, model, opt, loader, device), device)
        rows[name] = (ours, cfg.batch_size, notebook)
        print(f"  {name}: ours {ours:,.0f} img/s, notebook {notebook:,.0f} img/s", flush=True)
    return rows


def matmul_flops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """The device's fp32 matmul rate, FLOP/s (TF32 off: a true fp32 number)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    seconds = timed(lambda: [a @ b for _ in range(repeats)], device)
    return 2 * n**3 * repeats / seconds


def ae_step_flops(params: dict, device: torch.device, batch: int = 256) -> float:
    """FLOPs of one AE training step (forward, backward; not the optimizer) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = core_builders.autoencoder(params)
    model = model.to(device).train()
    side = model.cfg.sizes()[0]  # 28, or 32 with padding
    (x,) = on_device(model, torch.rand(batch, 1, side, side))
    with FlopCounterMode(display=False) as counter:
        model.loss(x)[0].backward()
    return counter.get_total_flops() / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                        help="override params.yaml's device for every part (implies --no-dvc)")
    parser.add_argument("-S", "--set", action="append", default=None, metavar="KEY=VALUE",
                        help="the experiment's params, as dvc exp run -S takes them (default: latent_dim=8)")
    parser.add_argument("--name", help="keep the experiment in this checkout under this name (make compare)")
    parser.add_argument("--no-dvc", action="store_true",
                        help="every stage as `python -m stages.<name>` on params.yaml, without dvc")
    parser.add_argument("--skip-stages", action="store_true", help="only the throughput and matmul parts")
    args = parser.parse_args()
    os.chdir(REPO)
    params = load_params(REPO)
    if args.device:
        params["device"] = args.device
    no_dvc = args.no_dvc or args.device is not None or shutil.which("dvc") is None
    try:
        device = resolve_device(top_level(params, "device"))
    except PipelineError as e:
        sys.exit(f"bench: {e}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"bench on {device} ({name}), torch {torch.__version__}")

    seconds, wall, root = {}, None, REPO
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if args.skip_stages:
            pass
        elif no_dvc:
            print("stages (python -m stages.<name>, DAG order, in a temporary copy, no dvc):")
            root = Path(tmp)
            copy_project(root, params)
            seconds = stage_seconds(root)
        else:
            sets = args.set or ["latent_dim=8"]
            print(f"the experiment `dvc exp run -S {' -S '.join(sets)}` in a temporary clone of HEAD ...", flush=True)
            seconds, wall = experiment_seconds(Path(tmp) / "clone", sets, args.name)
        if not (root / "data/processed/train.npz").exists():
            sys.exit("bench: data/processed is missing; run `dvc repro preprocess` first")
        print("training throughput (one timed epoch each):")
        try:
            rows = throughput(params, device, root / "data/processed", root / "data/raw")
        except PipelineError as e:
            sys.exit(f"bench: {e}")
    peak = matmul_flops(device)
    ae_flops = ae_step_flops(params, device)

    if seconds:
        print(f"\n{'each part of the experiment' if wall else 'each stage'}, seconds (start-up: imports; "
              "train_eval: the train loss re-evaluated after each epoch; bound: the VAE's IWAE bound; other: "
              "the stage's own work outside these)\n")
        print(split_table(seconds, wall))
    print("\n| training loop | ours img/s (batch) | notebook img/s (batch 100) | ours / notebook |\n|---|---|---|---|")
    for stage, (ours, batch, notebook) in rows.items():
        print(f"| {stage} | {ours:,.0f} ({batch}) | {notebook:,.0f} | {ours / notebook:.1f}x |")
    ae_rate = rows["train_ae"][0] * ae_flops
    print(f"\nfp32 matmul (2048^3): {peak / 1e9:,.0f} GFLOP/s; AE training step: {ae_flops / 1e6:.1f} MFLOP/image "
          f"x {rows['train_ae'][0]:,.0f} img/s = {ae_rate / 1e9:,.1f} GFLOP/s = {ae_rate / peak:.0%} of the matmul rate")


if __name__ == "__main__":
    main()
