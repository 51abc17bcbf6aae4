"""Downloads against a local HTTP server: resume, checksums, unpacking, offline errors."""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from spikekws.cli import main
from spikekws.data import build_dataset
from spikekws.data.download import (
    DATASET_SOURCES,
    DownloadError,
    download_dataset,
    download_file,
    extract,
)
from spikekws.data.spikes import write_spike_h5


class _Handler(BaseHTTPRequestHandler):
    files: Dict[str, bytes] = {}
    log: List[Tuple[str, Optional[str]]] = []
    honour_range = True

    def do_GET(self):  # noqa: N802 - http.server API
        name = self.path.lstrip("/")
        self.log.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404, "Not Found")
            return
        body = self.files[name]
        rng = self.headers.get("Range")
        if rng and self.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "log": [], "honour_range": True})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_full_download_with_checksum(server, tmp_path):
    server.files["data.bin"] = PAYLOAD
    out = download_file(server.url + "data.bin", tmp_path / "data.bin", sha256=SHA,
                        md5=hashlib.md5(PAYLOAD).hexdigest())
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "data.bin.part").exists()
    server.log.clear()
    download_file(server.url + "data.bin", out, sha256=SHA)  # verified, not fetched again
    assert server.log == []


def test_resume_from_partial_file(server, tmp_path):
    server.files["data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:123_456])
    seen = []
    download_file(server.url + "data.bin", tmp_path / "data.bin", sha256=SHA,
                  progress=lambda done, total: seen.append((done, total)))
    assert server.log == [("data.bin", "bytes=123456-")]
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and seen[0][0] > 123_456


def test_server_ignoring_range_restarts(server, tmp_path):
    server.files["data.bin"] = PAYLOAD
    server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"x" * 1000)
    download_file(server.url + "data.bin", tmp_path / "data.bin", sha256=SHA)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_complete_part_file_answered_416(server, tmp_path):
    server.files["data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download_file(server.url + "data.bin", tmp_path / "data.bin", sha256=SHA)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_part(server, tmp_path):
    server.files["data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(b"garbage!" * 10)  # corrupt partial download
    with pytest.raises(DownloadError, match=r"checksum mismatch for .*data\.bin: sha256 "):
        download_file(server.url + "data.bin", tmp_path / "data.bin", sha256=SHA)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()
    download_file(server.url + "data.bin", tmp_path / "data.bin", sha256=SHA)  # retry works
    with pytest.raises(DownloadError, match="md5"):
        download_file(server.url + "data.bin", tmp_path / "other.bin", md5="0" * 32)


def test_offline_and_http_errors_are_one_line(server, tmp_path):
    url = closed_port_url() + "shd_train.h5.gz"
    with pytest.raises(DownloadError) as err:
        download_file(url, tmp_path / "x")
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "connection refused" in msg
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download_file(server.url + "missing.bin", tmp_path / "y")
    assert err.value.status == 404


def _gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _shd_file(tmp_path: Path, name: str, n: int) -> bytes:
    rng = np.random.default_rng(len(name))
    times = [np.sort(rng.uniform(0, 1, 20)) for _ in range(n)]
    units = [rng.integers(0, 700, 20) for _ in range(n)]
    path = write_spike_h5(tmp_path / "src" / name, times, units, rng.integers(0, 20, n))
    return path.read_bytes()


def serve_shd(server, tmp_path, bad_md5: bool = False) -> None:
    lines = []
    for name, n in (("shd_train.h5", 8), ("shd_test.h5", 3)):
        gz = _gz(_shd_file(tmp_path, name, n))
        server.files[name + ".gz"] = gz
        md5 = "f" * 32 if bad_md5 else hashlib.md5(gz).hexdigest()
        lines.append(f"{md5}  {name}.gz")
    server.files["md5sums.txt"] = ("\n".join(lines) + "\n").encode()


def test_download_dataset_shd_end_to_end(server, tmp_path):
    serve_shd(server, tmp_path)
    root = download_dataset("shd", tmp_path / "shd", base_url=server.url)
    assert root == (tmp_path / "shd").resolve()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "shd_test.h5", "shd_train.h5"]  # archives removed after unpacking
    assert len(build_dataset("shd", root, "test")) == 3
    server.log.clear()
    download_dataset("shd", tmp_path / "shd", base_url=server.url)
    assert server.log == []  # already there


def test_download_dataset_md5_from_server_list(server, tmp_path):
    serve_shd(server, tmp_path, bad_md5=True)
    with pytest.raises(DownloadError, match="checksum mismatch.*md5"):
        download_dataset("shd", tmp_path / "shd", base_url=server.url)


def test_download_tar_archive(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("hd_audio/train_filenames.txt", b"a\n"), ("hd_audio/audio/x.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    server.files["hd_audio.tar.gz"] = buf.getvalue()
    server.files["md5sums.txt"] = f"{hashlib.md5(buf.getvalue()).hexdigest()}  hd_audio.tar.gz\n".encode()
    download_dataset("hd", tmp_path / "hd", base_url=server.url, keep_archives=True)
    assert (tmp_path / "hd" / "hd_audio" / "audio" / "x.txt").read_bytes() == b"x"
    assert (tmp_path / "hd" / "hd_audio.tar.gz").is_file()


def test_extract_refuses_unsafe_members(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="unsafe member"):
        extract(bad, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(ValueError, match="unknown archive type"):
        extract(tmp_path / "file.rar", tmp_path / "out")


def test_sources_table():
    assert {"shd", "ssc", "hd", "gsc", "gsc12", "fsdd"} <= set(DATASET_SOURCES)
    assert DATASET_SOURCES["gsc"].resources[0].sha256
    assert DATASET_SOURCES["shd"].base_url.startswith("https://zenkelab.org/datasets")
    with pytest.raises(KeyError, match="did you mean 'shd'"):
        download_dataset("shdd", "unused")


@pytest.fixture
def restore_logging():
    """``main`` installs a handler on the "spikekws" logger; take it away afterwards."""
    logger = logging.getLogger("spikekws")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers, logger.propagate = state[0], state[2]
    logger.setLevel(state[1])


def test_cli_download(server, tmp_path, capsys, restore_logging):
    serve_shd(server, tmp_path)
    rc = main(["-q", "download", "shd", "--to", str(tmp_path / "d"), "--base-url", server.url,
               "--no-progress"])
    assert rc == 0 and "data.name=shd" in capsys.readouterr().out
    rc = main(["-q", "download", "ssc", "--to", str(tmp_path / "e"), "--base-url",
               closed_port_url(), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("spikekws: error: cannot download") and "\n" not in err
