"""Atomic file writes (a reader never sees a half-written file, a killed job leaves the old one),
one writer at a time (an OS file lock), and code-free loading of torch files."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from fpar.errors import FparError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    if path.is_dir():
        raise FparError(f"{path} is a folder: give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file gets the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an OS lock on the file ``path`` (created if needed) for the block; :class:`FparError`
    naming ``what`` at once if another process holds it.

    The lock is the operating system's (``flock``), so a killed holder releases it: no stale lock
    to clean up by hand. The lock file itself stays, since deleting it would let a third process
    lock a fresh file while the second still holds the old one.
    """
    from filelock import FileLock, Timeout  # imported here: most users of this module never lock

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        raise FparError(f"{what}: another process is writing it (lock {path} is held); "
                        "wait for it or stop it first") from None
    except OSError as exc:
        raise FparError(f"{path}: cannot create lock file ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint", *, mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain values only, so loading never
    runs code. A file that would need code, or that is not a torch file at all, is one FparError.

    ``mmap``: the tensors map the file (copy on write) instead of being read: only what is used
    is read into memory, and the page cache holds it rather than a second copy."""
    import torch  # torch is heavy; most users of this module only write files

    path = Path(path)
    if not path.is_file():
        raise FparError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if blocked:
            raise FparError(f"refusing to load {path}: it holds Python objects ({blocked.group(1)}) and loading it "
                            "could run code; fpar loads plain weights files only (save a state_dict)") from None
        raise FparError(f"{path} is not a readable {what} (corrupt, truncated or not a torch file)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        raise FparError(f"{path} is not a readable {what} (corrupt, truncated or not a torch file)") from None
