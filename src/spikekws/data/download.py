"""Checksummed, resumable downloads of the benchmark datasets (``spikekws download``).

``download_dataset(name, to)`` fetches the official files of ``name`` into ``to`` and
unpacks them so that ``build_dataset(name, dataset_root(name, to), ...)`` works:

========  ==========================================================  =====================
name      source                                                      checksum
========  ==========================================================  =====================
shd       https://zenkelab.org/datasets/shd_{train,test}.h5.gz        MD5 from the server's
ssc       https://zenkelab.org/datasets/ssc_{train,valid,test}.h5.gz  ``md5sums.txt``
hd        https://zenkelab.org/datasets/hd_audio.tar.gz               (see below)
gsc       http://download.tensorflow.org/data/speech_commands_v0.02   SHA-256 pinned
          .tar.gz (also for ``gsc12``)
fsdd      GitHub archive of Jakobovski/free-spoken-digit-dataset      SHA-256 pinned
          v1.0.9 (``.../archive/v1.0.9.tar.gz``)
========  ==========================================================  =====================

Where the checksums come from: GSC v2 and FSDD v1.0.9 SHA-256 values are the ones
torchaudio and TensorFlow Datasets record for the same URLs (GitHub builds its archives
on the fly; should it ever change their bytes, the download fails with a checksum error
rather than accepting an unknown file). For the Zenke lab files (SHD, SSC, HD) the
published copies of the MD5 sums disagree with each other, so none is pinned here: the
MD5 listed in ``<base>/md5sums.txt`` is fetched with the files and checked. If that list
cannot be read (HTTP error) the files are used unverified, with a warning.

How a file is fetched (:func:`download_file`): bytes go to ``<file>.part``; an existing
``.part`` is resumed with an HTTP ``Range`` request (a server that ignores it makes the
download restart); the finished file is checked against its SHA-256/MD5 (a mismatch
deletes the ``.part`` and raises :class:`DownloadError`) and only then renamed to its
final name, so a final name always means a complete, verified file. Archives are then
unpacked (``.gz`` -> the file without ``.gz``; ``.tar.gz``/``.zip`` -> a folder, with
paths checked to stay inside it) and deleted unless ``keep_archives``. Unpacked outputs
that already exist are not fetched again.

Network problems raise :class:`DownloadError` with a one-line message (offline, DNS,
HTTP error) that names the URL.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import socket
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

log = logging.getLogger("spikekws.data")

__all__ = [
    "DATASET_SOURCES",
    "DownloadError",
    "Resource",
    "Source",
    "dataset_root",
    "download_dataset",
    "download_file",
    "extract",
    "file_digest",
    "list_sources",
]

PathLike = Union[str, "os.PathLike[str]"]

ZENKE_BASE = "https://zenkelab.org/datasets/"
GSC_BASE = "http://download.tensorflow.org/data/"
FSDD_BASE = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
USER_AGENT = "spikekws-download/1"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, checksum); the message is one line.

    ``status`` is the HTTP status code when the server answered with an error.
    """

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Resource:
    """One file of a dataset.

    ``filename`` is the name on the server (appended to the source's base URL) and on
    disk; ``output`` the unpacked result relative to the target folder (the file itself
    when ``None``).
    """

    filename: str
    sha256: Optional[str] = None
    md5: Optional[str] = None
    output: Optional[str] = None


@dataclass(frozen=True)
class Source:
    """Where a dataset's files live and how its loader finds them afterwards."""

    base_url: str
    resources: Tuple[Resource, ...]
    md5_list: Optional[str] = None
    root: str = "."
    note: str = ""
    loaders: Tuple[str, ...] = field(default_factory=tuple)


DATASET_SOURCES: Dict[str, Source] = {
    "shd": Source(
        ZENKE_BASE,
        (Resource("shd_train.h5.gz", output="shd_train.h5"),
         Resource("shd_test.h5.gz", output="shd_test.h5")),
        md5_list="md5sums.txt", loaders=("shd",),
        note="MD5 from the server's md5sums.txt"),
    "ssc": Source(
        ZENKE_BASE,
        (Resource("ssc_train.h5.gz", output="ssc_train.h5"),
         Resource("ssc_valid.h5.gz", output="ssc_valid.h5"),
         Resource("ssc_test.h5.gz", output="ssc_test.h5")),
        md5_list="md5sums.txt", loaders=("ssc",),
        note="MD5 from the server's md5sums.txt"),
    "hd": Source(
        ZENKE_BASE, (Resource("hd_audio.tar.gz", output="."),),
        md5_list="md5sums.txt", loaders=("hd",),
        note="MD5 from the server's md5sums.txt"),
    "gsc": Source(
        GSC_BASE,
        (Resource("speech_commands_v0.02.tar.gz",
                  sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
                  output="."),),
        loaders=("gsc", "gsc12"), note="SHA-256 pinned"),
    "fsdd": Source(
        FSDD_BASE,
        (Resource("v1.0.9.tar.gz",
                  sha256="8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0",
                  output="."),),
        root="free-spoken-digit-dataset-1.0.9", loaders=("fsdd",),
        note="SHA-256 as recorded by TensorFlow Datasets (GitHub-generated archive)"),
}
DATASET_SOURCES["gsc12"] = DATASET_SOURCES["gsc"]


def list_sources() -> List[str]:
    return sorted(DATASET_SOURCES)


def _source(name: str) -> Source:
    key = name.lower()
    if key not in DATASET_SOURCES:
        import difflib

        close = difflib.get_close_matches(key, list(DATASET_SOURCES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"no download for dataset {name!r}{hint} "
                       f"(available: {', '.join(list_sources())})")
    return DATASET_SOURCES[key]


def dataset_root(name: str, to: PathLike) -> Path:
    """The folder to pass as ``root`` to the loader after ``download_dataset(name, to)``."""
    return (Path(to) / _source(name).root).resolve()


# --------------------------------------------------------------------------- single file
def file_digest(path: PathLike, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, socket.gaierror):
            return "host not found (no network connection?)"
        if isinstance(inner, ConnectionRefusedError):
            return "connection refused"
        if isinstance(inner, (socket.timeout, TimeoutError)):
            return "timed out"
        return str(getattr(inner, "strerror", None) or inner)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(getattr(exc, "strerror", None) or exc)


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(req, timeout=timeout)


def fetch_text(url: str, timeout: float = 30.0) -> str:
    """A small text resource (e.g. a checksum list); DownloadError on failure."""
    try:
        with _open(url, 0, timeout) as resp:
            return resp.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot download {url}: {_reason(exc)}",
                            getattr(exc, "code", None)) from None


def download_file(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    md5: Optional[str] = None,
    timeout: float = 30.0,
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (resuming ``dest.part``), verify, rename; return ``dest``.

    An existing ``dest`` is verified (when a checksum is given) and kept if it matches.
    ``progress(bytes_done, bytes_total_or_None)`` is called after each chunk.

    Raises:
        DownloadError: unreachable server / HTTP error (one-line message naming the URL)
            or checksum mismatch (the ``.part`` file is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if _verify(dest, sha256, md5) is None:
            log.info("already downloaded: %s", dest)
            return dest
        log.warning("%s does not match its checksum; downloading it again", dest)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if not (exc.code == 416 and start > 0):
            raise DownloadError(f"cannot download {url}: {_reason(exc)}", exc.code) from None
        # Range beyond the end: the .part is probably complete; the checksum decides.
        resp = None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot download {url}: {_reason(exc)}") from None
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            if start > 0 and status != 206:
                log.info("%s: the server ignored the range request; restarting", url)
                start = 0
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            done = start
            try:
                with open(part, "ab" if start > 0 else "wb") as out:
                    for chunk in iter(lambda: resp.read(CHUNK), b""):
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            except (urllib.error.URLError, OSError) as exc:
                raise DownloadError(f"download of {url} interrupted after {done} bytes: "
                                    f"{_reason(exc)}; run again to resume") from None
        if total is not None and done < total:
            raise DownloadError(f"download of {url} ended after {done} of {total} bytes; "
                                f"run again to resume")
    problem = _verify(part, sha256, md5)
    if problem is not None:
        part.unlink()
        raise DownloadError(f"checksum mismatch for {url}: {problem}; the partial file was "
                            f"deleted, run again to retry")
    os.replace(part, dest)
    return dest


def _verify(path: Path, sha256: Optional[str], md5: Optional[str]) -> Optional[str]:
    """None if ``path`` matches the given checksums, else what differs."""
    if not path.is_file():
        return "file missing"
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                return f"{algo} {got}, expected {want.lower()}"
    return None


# --------------------------------------------------------------------------- unpacking
def _inside(base: Path, target: Path) -> bool:
    base, target = base.resolve(), target.resolve()
    return target == base or base in target.parents


def extract(archive: PathLike, to: PathLike) -> Path:
    """Unpack ``archive`` into folder ``to`` (``.tar[.gz|.bz2|.xz]``, ``.tgz``, ``.zip``)
    or gunzip a plain ``.gz`` to ``to`` (a file path); returns ``to``.

    Members that would land outside ``to`` (absolute paths, ``..``, links pointing
    out) raise ValueError; nothing is written in that case.
    """
    archive, to = Path(archive), Path(to)
    name = archive.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        to.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                if not _inside(to, to / m.name) or m.isdev():
                    raise ValueError(f"{archive}: unsafe member {m.name!r}; not extracted")
                if (m.issym() or m.islnk()) and not _inside(to, (to / m.name).parent / m.linkname):
                    raise ValueError(f"{archive}: link {m.name!r} points outside; not extracted")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(to, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(to, members=members)
        return to
    if name.endswith(".zip"):
        to.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf:
            for n in zf.namelist():
                if not _inside(to, to / n):
                    raise ValueError(f"{archive}: unsafe member {n!r}; not extracted")
            zf.extractall(to)
        return to
    if name.endswith(".gz"):
        to.parent.mkdir(parents=True, exist_ok=True)
        tmp = to.with_name(to.name + ".tmp")
        try:
            with gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            os.replace(tmp, to)
        except (OSError, EOFError) as exc:
            tmp.unlink(missing_ok=True)
            raise ValueError(f"{archive}: cannot gunzip ({exc})") from None
        return to
    raise ValueError(f"{archive}: unknown archive type (expected .gz, .tar.gz, .tgz or .zip)")


def _parse_md5_list(text: str) -> Dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 32:
            out[parts[-1].lstrip("*").split("/")[-1]] = parts[0].lower()
    return out


# --------------------------------------------------------------------------- dataset
def download_dataset(
    name: str,
    to: PathLike,
    base_url: Optional[str] = None,
    keep_archives: bool = False,
    timeout: float = 30.0,
    progress: bool = False,
) -> Path:
    """Download and unpack dataset ``name`` into ``to``; returns the loader's root folder.

    ``base_url`` replaces the official location (a mirror, or a local server in tests).
    """
    src = _source(name)
    to = Path(to).expanduser()
    to.mkdir(parents=True, exist_ok=True)
    base = (base_url or src.base_url).rstrip("/") + "/"
    todo = [r for r in src.resources if not _unpacked(to, r)]
    if not todo:
        log.info("%s: already downloaded in %s", name, to)
        return dataset_root(name, to)
    listed: Dict[str, str] = {}
    if src.md5_list:
        try:
            listed = _parse_md5_list(fetch_text(base + src.md5_list, timeout))
        except DownloadError as exc:
            if exc.status is None:
                raise  # unreachable: the data files will not come either
            log.warning("%s; the files of %s are used without checksum verification", exc, name)
    for res in todo:
        md5 = res.md5 or listed.get(res.filename)
        if not (res.sha256 or md5):
            log.warning("%s: no checksum known; the file is not verified", res.filename)
        archive = to / res.filename
        bar = _progress_bar(res.filename) if progress else None
        try:
            download_file(base + res.filename, archive, sha256=res.sha256, md5=md5,
                          timeout=timeout, progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        out = _output_path(to, res)
        if out != archive:
            log.info("unpacking %s", archive)
            extract(archive, out)
            (to / f".{res.filename}.done").write_text(res.filename + "\n")
            if not keep_archives:
                archive.unlink()
    return dataset_root(name, to)


def _output_path(to: Path, res: Resource) -> Path:
    return to / res.output if res.output is not None else to / res.filename


def _unpacked(to: Path, res: Resource) -> bool:
    if res.output is None:
        return (to / res.filename).is_file()
    if res.output == ".":  # a folder archive: only the marker says it was fully unpacked
        return (to / f".{res.filename}.done").is_file()
    return (to / res.output).is_file()  # gunzip output appears atomically


class _Bar:
    """A tqdm byte counter, shown from the first received chunk on."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._tqdm = None

    def update(self, done: int, total: Optional[int]) -> None:
        if self._tqdm is None:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(desc=self.desc, unit="B", unit_scale=True, leave=False, total=total)
        if total is not None and self._tqdm.total != total:
            self._tqdm.total = total
        self._tqdm.n = done
        self._tqdm.refresh()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def _progress_bar(desc: str) -> _Bar:
    return _Bar(desc)
