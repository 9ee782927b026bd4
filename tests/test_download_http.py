"""Download over HTTP: torchvision's download_url against a synthetic mirror served on
127.0.0.1, so that good, missing, truncated and captive-portal answers are tested offline."""
from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stages.core import data
from stages.core.data import DATASETS, MIRROR_ENV, TORCHVISION, DataError, download, mirror_folder
from conftest import dataset_dir

LOOPBACK = "127.0.0.1"
IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


class Mirror(BaseHTTPRequestHandler):
    """Serves ``root`` (the synthetic mirror) in one of the ``mode``s below; notes each request."""

    root: Path
    mode = "files"  # files | missing | close | reset | html
    target = IMAGES  # the file that is missing or truncated
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        path = self.root / self.path.lstrip("/")
        if self.mode == "html":
            self.reply(200, b"<html><body>Please log in to use the Wi-Fi.</body></html>", "text/html")
        elif not path.is_file() or (self.mode == "missing" and path.name == self.target):
            self.reply(404, b"not found", "text/plain")
        elif self.mode in ("close", "reset") and path.name == self.target:
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body)))  # the whole file...
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # ...but only half of it, then hang up:
            self.wfile.flush()
            self.close_connection = True
            if self.mode == "reset":  # with a TCP reset (the client sees ECONNRESET)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:  # or an orderly close (the client sees the body end early)
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.reply(200, path.read_bytes(), "application/gzip")

    def reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def serve(mirror, synthetic_sums, monkeypatch):
    """``serve(mode)`` starts a mirror on the loopback; returns its URL and request log.
    Every socket gets a timeout, so a misbehaving server fails the test instead of hanging it."""
    servers = []
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)  # torchvision's urlopen calls pass no timeout of their own

    fetch = data.download_url

    def loopback_only(url: str, *args, **kwargs):
        assert url.startswith(f"http://{LOOPBACK}:"), f"test tried the network: {url}"
        return fetch(url, *args, **kwargs)

    monkeypatch.setattr(data, "download_url", loopback_only)

    def start(mode: str = "files", target: str = IMAGES) -> tuple[str, list[str]]:
        requests: list[str] = []
        handler = type("Handler", (Mirror,), dict(root=mirror, mode=mode, target=target, requests=requests))
        server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True).start()
        servers.append(server)
        return f"http://{LOOPBACK}:{server.server_address[1]}", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    socket.setdefaulttimeout(old_timeout)


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file in ``folder`` (name -> bytes); None if the folder is absent."""
    if not folder.exists():
        return None
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def check_failure(error: DataError, raw_dir: Path, before: dict[str, bytes] | None) -> str:
    """The checks every failure shares; returns the message for the case's own checks."""
    message = str(error)
    assert "Traceback" not in message and "\n\n" not in message, message
    assert MIRROR_ENV in message, message  # says what to do
    assert snapshot(raw_dir) == before, "raw_dir changed"
    assert not list(raw_dir.parent.glob(".download-*")), "a temporary folder was left"
    return message


def test_fetches_both_datasets_then_nothing(serve, tmp_path, mirror):
    url, requests = serve()
    for dataset in DATASETS:
        raw_dir = tmp_path / dataset / "raw"
        fetched = download(dataset, raw_dir, mirror_folder(url, dataset))
        assert sorted(fetched) == sorted(data.raw_files(dataset))
        assert len(fetched) == 4
        sums = data.expected_sha256(dataset)
        for name in fetched:
            assert data.verify(raw_dir / name, sums[name[:-3]]) is None, name
            assert (raw_dir / name).read_bytes() == (dataset_dir(mirror, dataset) / name).read_bytes()
        assert any(r.startswith(f"/{TORCHVISION[dataset]}/raw/") for r in requests)
    assert not list(tmp_path.glob("*/.download-*"))

    n = len(requests)
    for dataset in DATASETS:
        assert download(dataset, tmp_path / dataset / "raw", mirror_folder(url, dataset)) == []
    assert len(requests) == n, f"a second call reached the server: {requests[n:]}"


def test_missing_file_names_it_and_keeps_raw_dir(serve, tmp_path, mirror):
    url, requests = serve("missing", target=IMAGES)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / LABELS).write_bytes((dataset_dir(mirror, "mnist") / LABELS).read_bytes())  # already there
    before = snapshot(raw_dir)
    with pytest.raises(DataError) as e:
        download("mnist", raw_dir, mirror_folder(url, "mnist"))
    message = check_failure(e.value, raw_dir, before)
    assert f"{IMAGES}: could not be fetched" in message
    assert "404" in message
    assert "1 file(s) failed" in message
    assert not any(r.endswith(LABELS) for r in requests), "a valid file was fetched again"


@pytest.mark.parametrize("hang_up", ["close", "reset"])
def test_truncated_file_is_one_clear_error(serve, tmp_path, hang_up):
    url, requests = serve(hang_up, target=IMAGES)
    raw_dir = tmp_path / "raw"
    with pytest.raises(DataError) as e:
        download("fashion_mnist", raw_dir, mirror_folder(url, "fashion_mnist"))
    message = check_failure(e.value, raw_dir, None)
    assert "1 file(s) failed" in message
    # The half file is kept and fails verify; a reset before it opened means no file at all.
    assert (f"{IMAGES} from {mirror_folder(url, 'fashion_mnist')} cannot be decompressed" in message
            or f"{IMAGES}: could not be fetched" in message), message
    assert any(r.endswith(IMAGES) for r in requests)


def test_captive_portal_page_cannot_be_decompressed(serve, tmp_path):
    url, _ = serve("html")
    raw_dir = tmp_path / "raw"
    with pytest.raises(DataError) as e:
        download("mnist", raw_dir, mirror_folder(url, "mnist"))
    message = check_failure(e.value, raw_dir, None)
    for name in data.raw_files("mnist"):
        assert f"{name} from {mirror_folder(url, 'mnist')} cannot be decompressed" in message, message
