"""Data: download with integrity checks, IDX parsing, the preprocess split, normalization
and atomic writes. Synthetic files only (the `mirror` fixture); never the network."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stages import download as download_stage
from stages import preprocess
from stages.core import cli, data, io
from stages.core import inputs
from stages.core.config import DataConfig, InputConfig
from stages.core.data import SHA256, SUMS_ENV, TORCHVISION, DataError
from conftest import N_TEST, N_TRAIN, REPO, dataset_dir, idx_bytes, synthetic_images

SHARED_DATA = REPO.parent / "shared" / "data"
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach an official mirror fails the test instead of going online."""
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"test tried the network: {url}")

    monkeypatch.setattr(data, "download_url", refuse)
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes); {} if the folder is absent."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def bad_mirror(tmp_path: Path, mirror: Path, dataset: str, name: str, content: bytes) -> Path:
    """A copy of the synthetic mirror (both datasets) with ``dataset``'s ``name`` replaced
    by ``content``; returns the copy's root."""
    root = tmp_path / "bad_mirror"
    shutil.copytree(mirror, root)
    (dataset_dir(root, dataset) / name).write_bytes(content)
    return root


def gz_with_flipped_data_byte(path: Path) -> tuple[bytes, str]:
    """A valid gzip of modified IDX content; returns it and the sha256 of that content."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 0xFF  # a pixel (or label), past the header
    return gzip.compress(bytes(raw), mtime=0), hashlib.sha256(raw).hexdigest()


# -------------------------------------------------------------------------- download
@pytest.mark.parametrize("dataset", data.DATASETS)
def test_download_from_mirror_env(dataset, mirror, synthetic_sums, params, tmp_path, monkeypatch):
    monkeypatch.setenv(data.MIRROR_ENV, str(mirror))  # a mirror in torchvision's layout, both datasets
    out = download_stage.main(params, tmp_path)

    raw = tmp_path / "data" / "raw" / dataset
    assert sorted(out["fetched"]) == sorted(data.DATASETS)  # both, whatever data.dataset is
    assert sorted(out["fetched"][dataset]) == sorted(FILES)
    assert sorted(data.raw_files(dataset)) == sorted(FILES)
    assert snapshot(raw) == snapshot(dataset_dir(mirror, dataset))
    for name in FILES:
        assert data.verify(raw / name, data.expected_sha256(dataset)[name[:-3]]) is None
    assert leftovers(raw.parent) == []


@pytest.mark.parametrize("dataset", data.DATASETS)
def test_download_skips_valid_files(dataset, mirror, synthetic_sums, tmp_path, monkeypatch):
    raw = tmp_path / "raw" / dataset
    assert sorted(data.download(dataset, raw, mirror=str(dataset_dir(mirror, dataset)))) == sorted(FILES)
    before = snapshot(raw)
    # The mirror is gone, empty, or unset (official mirrors: the network is refused).
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in (str(tmp_path / "nonexistent"), str(empty), None):
        assert data.download(dataset, raw, mirror=source) == []
    assert snapshot(raw) == before


def test_download_replaces_only_invalid_file(mirror, synthetic_sums, tmp_path):
    raw = tmp_path / "raw" / "mnist"
    data.download("mnist", raw, mirror=str(dataset_dir(mirror, "mnist")))
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    assert data.download("mnist", raw, mirror=str(dataset_dir(mirror, "mnist"))) == ["t10k-labels-idx1-ubyte.gz"]
    assert snapshot(raw) == snapshot(dataset_dir(mirror, "mnist"))


def _corruptions(mirror: Path, dataset: str) -> dict[str, tuple[str, bytes]]:
    gz = (dataset_dir(mirror, dataset) / "train-images-idx3-ubyte.gz").read_bytes()
    bad_block = bytearray(gz)
    bad_block[10] |= 0b110  # first deflate block header: BTYPE=11, reserved
    bad_crc = bytearray(gz)
    bad_crc[-8] ^= 0xFF  # CRC32 of the payload
    middle = bytearray(gz)
    middle[len(gz) // 2] ^= 0xFF
    return {
        "truncated": ("t10k-images-idx3-ubyte.gz", bytes(gz[: len(gz) // 2])),
        "html": ("train-labels-idx1-ubyte.gz", b"<html>403</html>"),
        "bad_deflate_block": ("train-images-idx3-ubyte.gz", bytes(bad_block)),
        "bad_crc": ("train-images-idx3-ubyte.gz", bytes(bad_crc)),
        "flipped_middle": ("train-images-idx3-ubyte.gz", bytes(middle)),
    }


@pytest.mark.parametrize("kind", ["truncated", "html", "bad_deflate_block", "bad_crc", "flipped_middle"])
@pytest.mark.parametrize("start", ["empty", "partial"])
def test_download_rejects_undecompressible(kind, start, mirror, synthetic_sums, tmp_path):
    dataset = "fashion_mnist"
    name, content = _corruptions(mirror, dataset)[kind]
    source = bad_mirror(tmp_path, mirror, dataset, name, content)
    raw = tmp_path / "data" / "raw" / dataset
    raw.mkdir(parents=True)
    if start == "partial":  # two valid files already there, and one invalid one
        for valid in FILES[:2]:
            if valid != name:
                shutil.copy(dataset_dir(mirror, dataset) / valid, raw / valid)
        (raw / FILES[3]).write_bytes(b"stale")
    before = snapshot(raw)

    with pytest.raises(DataError) as e:
        data.download(dataset, raw, mirror=str(dataset_dir(source, dataset)))
    msg = str(e.value)
    assert f"{name} from {dataset_dir(source, dataset)}" in msg
    assert "cannot be decompressed" in msg
    assert "What to do" in msg and data.MIRROR_ENV in msg
    assert "1 file(s) failed" in msg  # only the bad one is reported
    assert snapshot(raw) == before
    assert leftovers(raw.parent) == []


@pytest.mark.parametrize("start", ["empty", "partial"])
def test_download_reports_sha256_mismatch(start, mirror, synthetic_sums, params, tmp_path, monkeypatch):
    dataset = "mnist"
    name = "train-images-idx3-ubyte.gz"
    content, actual = gz_with_flipped_data_byte(dataset_dir(mirror, dataset) / name)
    expected = data.expected_sha256(dataset)[name[:-3]]
    source = bad_mirror(tmp_path, mirror, dataset, name, content)
    raw = tmp_path / "data" / "raw" / dataset
    raw.mkdir(parents=True)
    if start == "partial":
        for valid in FILES[2:]:
            shutil.copy(dataset_dir(mirror, dataset) / valid, raw / valid)
    before = snapshot(raw)

    monkeypatch.setenv(data.MIRROR_ENV, str(source))
    with pytest.raises(DataError) as e:  # through the stage, as `dvc repro` runs it
        download_stage.main({"data": {**params["data"], "dataset": dataset}}, tmp_path)
    msg = str(e.value)
    assert name in msg
    assert expected in msg and actual in msg and actual != expected
    assert "What to do" in msg
    assert snapshot(raw) == before
    assert leftovers(raw.parent) == []


def test_download_nonexistent_raw_dir_gets_no_files(mirror, synthetic_sums, tmp_path):
    source = bad_mirror(tmp_path, mirror, "mnist", FILES[0], b"<html>403</html>")
    raw = tmp_path / "data" / "raw" / "mnist"
    with pytest.raises(DataError):
        data.download("mnist", raw, mirror=str(source))
    assert snapshot(raw) == {}
    assert leftovers(raw.parent) == []


def test_download_missing_file_in_mirror(mirror, synthetic_sums, tmp_path):
    source = tmp_path / "partial_mirror"
    shutil.copytree(dataset_dir(mirror, "mnist"), source)
    (source / FILES[1]).unlink()
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match=f"{FILES[1]}: could not be fetched"):
        data.download("mnist", raw, mirror=str(source))
    assert snapshot(raw) == {}


def test_download_without_override_rejects_synthetic_files(mirror, tmp_path, monkeypatch):
    """Without DATA_SHA256SUMS the real table applies: synthetic files must not pass."""
    monkeypatch.delenv(SUMS_ENV, raising=False)
    with pytest.raises(DataError) as e:
        data.download("mnist", tmp_path / "raw", mirror=str(dataset_dir(mirror, "mnist")))
    assert "4 file(s) failed" in str(e.value)
    assert SHA256["mnist"]["train-images-idx3-ubyte"] in str(e.value)


def test_sums_override_missing_entries(mirror, tmp_path, monkeypatch):
    lines = (mirror / "SHA256SUMS").read_text().splitlines()
    partial = tmp_path / "SHA256SUMS"
    partial.write_text("\n".join(l for l in lines if "train-labels" not in l) + "\n")
    monkeypatch.setenv(SUMS_ENV, str(partial))
    for dataset in data.DATASETS:
        with pytest.raises(DataError, match=SUMS_ENV):
            data.expected_sha256(dataset)
        with pytest.raises(DataError, match=TORCHVISION[dataset]):
            data.download(dataset, tmp_path / "raw" / dataset, mirror=str(dataset_dir(mirror, dataset)))
        assert snapshot(tmp_path / "raw" / dataset) == {}


def test_sums_override_selects_dataset_folder(mirror, synthetic_sums):
    """MNIST/raw/... lines must not be read as FashionMNIST/raw/... ones, and vice versa."""
    mnist, fashion = data.expected_sha256("mnist"), data.expected_sha256("fashion_mnist")
    assert sorted(mnist) == sorted(SHA256["mnist"])
    assert set(mnist.values()).isdisjoint(fashion.values())
    raw = gzip.decompress((dataset_dir(mirror, "fashion_mnist") / FILES[0]).read_bytes())
    assert fashion[FILES[0][:-3]] == hashlib.sha256(raw).hexdigest()


def _shared_sums() -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {d: {} for d in data.DATASETS}
    folders = {TORCHVISION[d]: d for d in data.DATASETS}
    for line in (SHARED_DATA / "SHA256SUMS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split()
            parts = Path(path).parts
            table[folders[parts[0]]][parts[-1]] = digest
    return table


@pytest.mark.skipif(not (SHARED_DATA / "SHA256SUMS").exists(), reason="../shared/data/SHA256SUMS absent")
def test_hash_table_matches_shared_sums():
    assert SHA256 == _shared_sums()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST" / "raw").is_dir(), reason="real Fashion-MNIST absent")
def test_real_fashion_mnist_files_verify(tmp_path):
    real = SHARED_DATA / "FashionMNIST" / "raw"
    for name in FILES:
        assert data.verify(real / name, SHA256["fashion_mnist"][name[:-3]]) is None
    assert sorted(data.download("fashion_mnist", tmp_path / "raw", mirror=str(real))) == sorted(FILES)
    images, labels = data.read_raw(tmp_path / "raw", "train")
    assert images.shape == (60000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10


# ------------------------------------------------------------------------------- IDX
def write_gz(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content, mtime=0))
    return path


def write_raw(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "train") -> Path:
    write_gz(folder / f"{prefix}-images-idx3-ubyte.gz", idx_bytes(images))
    write_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", idx_bytes(labels))
    return folder


def test_read_idx_round_trip(tmp_path):
    images, labels = synthetic_images(20, seed=3)
    raw = write_raw(tmp_path, images, labels)
    got_images, got_labels = data.read_raw(raw, "train")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64


@pytest.mark.parametrize("content, ndim, match", [
    pytest.param(idx_bytes(np.zeros(20)), 3, "magic number 0x0801, expected 0x0803", id="labels-read-as-images"),
    pytest.param(b"\x00\x00\x09\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03", 1,
                 "magic number 0x0901, expected 0x0801", id="signed-bytes"),
    pytest.param(idx_bytes(np.zeros((10, 28, 28)))[:-28 * 28], 3,
                 r"header says \(10, 28, 28\) = 7840 bytes of data, file holds 7056", id="fewer-images-than-header"),
    pytest.param(idx_bytes(np.zeros(5)) + b"\x00", 1, r"header says \(5,\) = 5 bytes of data, file holds 6",
                 id="more-labels-than-header"),
    pytest.param(b"\x00\x00\x08", 1, "too short", id="no-header"),
])
def test_read_idx_bad_header(content, ndim, match, tmp_path):
    path = write_gz(tmp_path / "bad-idx-ubyte.gz", content)
    with pytest.raises(DataError, match=match) as e:
        data.read_idx(path, ndim)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("kind", ["html", "truncated", "bad_deflate_block"])
def test_read_idx_not_gzip(kind, tmp_path):
    gz = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)), mtime=0)
    content = {"html": b"<html>403</html>", "truncated": gz[: len(gz) // 2],
               "bad_deflate_block": gz[:10] + bytes([gz[10] | 0b110]) + gz[11:]}[kind]
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="cannot be decompressed.*rerun the download stage") as e:
        data.read_idx(path, 1)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((5, 27, 27)), np.zeros(5),
     r"train-images-idx3-ubyte.gz: dimensions \(5, 27, 27\) in the header: images are 27x27 pixels, expected 28x28"),
    (np.zeros((5, 28, 28)), np.zeros(4), "train: 5 images but 4 labels"),
    (np.zeros((5, 28, 28)), np.array([0, 1, 10, 2, 3]), "train: label 10 out of range 0-9"),
])
def test_read_raw_inconsistent(images, labels, match, tmp_path):
    raw = write_raw(tmp_path / "raw", images, labels)
    with pytest.raises(DataError, match=match) as e:
        data.read_raw(raw, "train")
    assert str(raw) in str(e.value)


def test_preprocess_bad_file_exits_with_message(mirror, params, tmp_path, monkeypatch):
    raw = tmp_path / "data" / "raw" / params["data"]["dataset"]
    shutil.copytree(dataset_dir(mirror, params["data"]["dataset"]), raw)
    images, labels = synthetic_images(N_TEST, seed=0)
    labels[7] = 10
    write_raw(raw, images, labels, prefix="t10k")

    with pytest.raises(DataError, match="t10k: label 10 out of range"):
        preprocess.main(params, tmp_path)
    assert not (tmp_path / "data" / "processed").exists()  # t10k is read before anything is written
    assert not (tmp_path / "metrics").exists()

    # The command line: `python -m stages.preprocess` loads params.yaml from the cwd.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "load_params", lambda root=Path("."): params)
    with pytest.raises(SystemExit) as e:
        cli.run(preprocess.main, stage=True)
    assert isinstance(e.value.code, str)
    assert e.value.code.startswith("preprocess failed: ")
    assert "t10k: label 10 out of range 0-9" in e.value.code


# ------------------------------------------------------------------------ preprocess
def train_indices(split_images: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Where each image of a split sits in the original training set (images are unique)."""
    where = {img.tobytes(): i for i, img in enumerate(original)}
    assert len(where) == len(original)
    return np.array([where[img.tobytes()] for img in split_images])


def test_preprocess_split(processed, params):
    raw = processed / "data" / "raw" / params["data"]["dataset"]
    images, labels = data.read_raw(raw, "train")
    s = {name: data.load_split(processed / "data" / "processed", name) for name in data.SPLITS}
    n_val = int(np.ceil(N_TRAIN * params["data"]["val_fraction"]))
    assert (len(s["train"].labels), len(s["val"].labels), len(s["test"].labels)) == (N_TRAIN - n_val, n_val, N_TEST)

    train_idx, val_idx = train_indices(s["train"].images, images), train_indices(s["val"].images, images)
    assert set(train_idx).isdisjoint(val_idx)
    assert sorted(np.concatenate([train_idx, val_idx])) == list(range(N_TRAIN))
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(val_idx) > 0)  # original order kept
    np.testing.assert_array_equal(s["train"].labels, labels[train_idx])
    np.testing.assert_array_equal(s["val"].labels, labels[val_idx])

    val_counts = np.bincount(s["val"].labels, minlength=10)
    assert val_counts.max() - val_counts.min() <= 1  # stratified

    test_images, test_labels = data.read_raw(raw, "t10k")
    np.testing.assert_array_equal(s["test"].images, test_images)
    np.testing.assert_array_equal(s["test"].labels, test_labels)
    assert s["train"].classes == data.class_names(params["data"]["dataset"]) == s["test"].classes
    assert s["train"].images.dtype == np.uint8 and s["train"].labels.dtype == np.int64


def test_preprocess_report_and_plots(processed, params):
    metrics = json.loads((processed / "reports" / "data.json").read_text())
    s = {name: data.load_split(processed / "data" / "processed", name) for name in data.SPLITS}
    for name in data.SPLITS:
        assert metrics[f"count_{name}"] == len(s[name].labels)
        per_class = [metrics[f"count_{name}_{data.slug(c)}"] for c in s[name].classes]
        assert per_class == np.bincount(s[name].labels, minlength=10).tolist()
    assert "count_train_t_shirt_top" in metrics  # fashion_mnist class names, slugged
    assert metrics["pixel_mean_train"] == pytest.approx(s["train"].images.mean() / 255, abs=1e-6)
    for name in ("mosaic", "pixel_histogram", "class_distribution"):
        png = processed / "plots" / "data" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(processed / "plots" / "data") == []


def test_preprocess_deterministic(processed, params, tmp_path_factory):
    again = tmp_path_factory.mktemp("again")
    shutil.copytree(processed / "data" / "raw", again / "data" / "raw")
    assert preprocess.main(params, again) == json.loads((processed / "reports" / "data.json").read_text())
    for name in data.SPLITS:
        a = io.load_arrays(processed / "data" / "processed" / f"{name}.npz")
        b = io.load_arrays(again / "data" / "processed" / f"{name}.npz")
        assert sorted(a) == sorted(b) == ["classes", "dataset", "images", "labels"]
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_split_depends_on_seed(processed, params):
    images, labels = data.read_raw(processed / "data" / "raw" / params["data"]["dataset"], "train")
    val = {}
    for seed in (0, 0, 1):
        cfg = DataConfig(params["data"]["dataset"], params["data"]["val_fraction"], seed)
        val.setdefault(seed, []).append(train_indices(preprocess.split(images, labels, cfg)["val"][0], images))
    np.testing.assert_array_equal(val[0][0], val[0][1])
    assert len(val[1][0]) == len(val[0][0])
    assert not np.array_equal(val[0][0], val[1][0])


# --------------------------------------------------------------------- normalization
@pytest.mark.parametrize("normalize, low, high", [("unit", 0.0, 1.0), ("symmetric", -1.0, 1.0)])
@pytest.mark.parametrize("pad", [0, 2])
def test_normalize_ranges_and_round_trip(normalize, low, high, pad):
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[0] = 255
    images[1] = np.arange(28 * 28).reshape(28, 28) % 256
    cfg = InputConfig(normalize, pad)
    x = inputs.normalize(images, cfg)
    side = 28 + 2 * pad
    assert x.shape == (3, 1, side, side) and x.dtype == torch.float32
    assert x.min().item() == low and x.max().item() == high  # image 2 is black, image 0 white
    if pad:
        border = torch.ones(side, side, dtype=torch.bool)
        border[pad:-pad, pad:-pad] = False
        assert torch.all(x[:, 0][:, border] == low)  # black, whatever the scale
        assert torch.all(x[0, 0, pad:-pad, pad:-pad] == high)
    back = inputs.to_unit(x, cfg)
    assert back.shape == (3, 1, 28, 28)
    torch.testing.assert_close(back, torch.from_numpy(images).float().unsqueeze(1) / 255, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------- atomic writes
class Boom(RuntimeError):
    pass


def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with pytest.raises(Boom):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"half": ')
            raise Boom
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_path_failure_keeps_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"a": 1.0})
    old = target.read_bytes()
    with pytest.raises(TypeError):
        io.write_json(target, {"a": object()})  # not serializable: fails inside atomic_path
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_save_figure_failure_leaves_nothing(tmp_path):
    class BrokenFigure:
        def savefig(self, path, **kwargs):
            Path(path).write_bytes(b"\x89PNG half")
            raise Boom("disk full")

    target = tmp_path / "plots" / "fig.png"
    target.parent.mkdir()
    target.write_bytes(b"old figure")
    with pytest.raises(Boom):
        io.save_figure(target, BrokenFigure())
    assert target.read_bytes() == b"old figure"
    assert [p.name for p in target.parent.iterdir()] == ["fig.png"]


def test_atomic_write_mode_and_content(tmp_path):
    old = os.umask(0o022)
    try:
        io.save_arrays(tmp_path / "a.npz", x=np.arange(3))
    finally:
        os.umask(old)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    np.testing.assert_array_equal(io.load_arrays(tmp_path / "a.npz")["x"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_mnist_path_end_to_end_through_preprocess(mirror, synthetic_sums, params, tmp_path, monkeypatch):
    """No MNIST copy is provided: its path runs on synthetic IDX files of the right format."""
    from conftest import N_TEST, N_TRAIN

    params["data"]["dataset"] = "mnist"
    monkeypatch.setenv(data.MIRROR_ENV, str(mirror))
    download_stage.main(params, tmp_path)
    metrics = preprocess.main(params, tmp_path)

    split = data.load_split(tmp_path / "data" / "processed", "test")
    assert split.classes[0] == "0 - zero" and len(split.classes) == 10  # torchvision's MNIST names
    assert metrics["count_test"] == N_TEST and metrics["count_train"] + metrics["count_val"] == N_TRAIN
    assert metrics["count_test_0_zero"] == (split.labels == 0).sum()


# ------------------------------------------ malformed IDX files let in by a user hash table
def _drop_last_label(raw: bytes) -> bytes:
    return idx_bytes(np.frombuffer(raw, dtype=np.uint8, offset=8)[:-1])


def _crop_rows(raw: bytes) -> bytes:
    return idx_bytes(np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:, :27, :])


@pytest.mark.parametrize("name, malform, fields", [
    pytest.param("train-images-idx3-ubyte.gz", lambda raw: raw[:2] + b"\x09" + raw[3:],
                 ["magic number 0x0903, expected 0x0803"], id="bad-magic"),
    pytest.param("train-images-idx3-ubyte.gz", _crop_rows,
                 [f"dimensions ({N_TRAIN}, 27, 28)", "images are 27x28 pixels, expected 28x28"], id="27x28-images"),
    pytest.param("t10k-images-idx3-ubyte.gz", lambda raw: raw[:-100],
                 [f"header says ({N_TEST}, 28, 28) = {N_TEST * 784} bytes of data, file holds {N_TEST * 784 - 100}"],
                 id="short-data"),
    pytest.param("train-labels-idx1-ubyte.gz", _drop_last_label,
                 [f"{N_TRAIN} images but {N_TRAIN - 1} labels", "disagree on the count"], id="label-count"),
])
def test_malformed_idx_passing_user_hash_table_fails_preprocess_clearly(
        name, malform, fields, mirror, params, tmp_path, monkeypatch):
    """A DATA_SHA256SUMS table listing a malformed file's hash lets it through download;
    preprocess must then stop with one line naming the file and the bad field."""
    dataset = params["data"]["dataset"]
    source = tmp_path / "mirror"
    shutil.copytree(mirror, source)
    bad = malform(gzip.decompress((dataset_dir(source, dataset) / name).read_bytes()))
    write_gz(dataset_dir(source, dataset) / name, bad)
    entry = f"{TORCHVISION[dataset]}/raw/{name[:-3]}"
    lines = (mirror / "SHA256SUMS").read_text().splitlines()
    assert sum(line.endswith(f"  {entry}") for line in lines) == 1
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("\n".join(f"{hashlib.sha256(bad).hexdigest()}  {entry}" if line.endswith(f"  {entry}") else line
                              for line in lines) + "\n")
    monkeypatch.setenv(data.MIRROR_ENV, str(source))
    monkeypatch.setenv(SUMS_ENV, str(sums))

    root = tmp_path / "project"
    raw = root / "data" / "raw" / dataset
    assert sorted(download_stage.main(params, root)["fetched"][dataset]) == sorted(FILES)  # the user table lets it in
    assert gzip.decompress((raw / name).read_bytes()) == bad

    # The command line, in-process (the e2e tests run the real one): one line, no traceback.
    monkeypatch.chdir(root)
    monkeypatch.setattr(cli, "load_params", lambda root=Path("."): params)
    with pytest.raises(SystemExit) as e:
        cli.run(preprocess.main, stage=True)
    message = e.value.code
    assert isinstance(message, str) and len(message.splitlines()) == 1, message
    assert message.startswith("preprocess failed: ")
    assert name in message and str(Path("data") / "raw" / dataset) in message
    for field in fields:
        assert field in message
    assert "official IDX file" in message and SUMS_ENV in message  # what to do
    assert not (root / "data" / "processed").exists()
    assert not (root / "reports").exists()
