"""Atomic file writes: a temporary file in the target's folder, fsync, then a rename, so a
crash or a full disk never leaves a half-written run file, checkpoint or figure behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, Path]


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], suffix: str = ".tmp") -> None:
    """Call ``write(f)`` on a binary temporary file next to ``path``, then rename it to ``path``.

    The temporary file is removed if ``write`` (or the rename) fails; ``path`` then keeps its
    previous content. ``suffix`` is the temporary file's suffix (writers that pick a format
    from the name, such as matplotlib's, need the real one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
