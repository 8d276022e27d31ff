"""Atomic file writes (a reader never sees a half-written file, a killed job leaves the old one),
one writer at a time (an OS file lock), paths that stay inside their root, and code-free loading
of torch files."""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import pickle
import re
import socket
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from fpar.errors import FparError


# Errors of the file system rather than of the program: the user can act on them (free space, fix
# permissions, choose another folder), so they are one line naming the path, never a traceback.
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EEXIST: "a file is in the way",
    errno.EFBIG: "file too large for the file system",
    errno.EIO: "input/output error",
}


def os_error_line(exc: OSError, path: str | os.PathLike | None = None) -> str | None:
    """One line for an OS error the user can fix (see :data:`WRITE_ERRNOS`), naming the path; None
    for other errors (a bug, which keeps its traceback)."""
    if exc.errno not in WRITE_ERRNOS:
        return None
    where = exc.filename if exc.filename is not None else path
    return f"{where}: {WRITE_ERRNOS[exc.errno]}" if where is not None else WRITE_ERRNOS[exc.errno]


def _write_failure(path: Path, exc: BaseException) -> FparError | None:
    """The one-line error for a failed write of ``path``, or None when the failure is not the
    file system's. ``torch.save`` reports a failed write as a RuntimeError from its zip writer
    ("file write failed", "enforce fail at inline_container.cc") without the errno; the free
    space then tells a full disk from other causes."""
    if isinstance(exc, OSError):
        if exc.errno not in WRITE_ERRNOS:
            return None
        # the folder that could not be made is worth naming; our temporary file is not
        other = exc.filename is not None and Path(exc.filename) != path \
            and not Path(exc.filename).name.startswith(f".{path.name[:200]}.")
        return FparError(f"cannot write {path}: {f'{exc.filename}: ' if other else ''}{WRITE_ERRNOS[exc.errno]}")
    if isinstance(exc, RuntimeError) and re.search(r"inline_container|file write failed", str(exc)):
        reason = "no space left on the device" if _nearly_full(path.parent) else "the write failed"
        return FparError(f"cannot write {path}: {reason}")
    return None


def _nearly_full(folder: Path) -> bool:
    try:
        usage = os.statvfs(folder)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize < (1 << 20)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A write the file system refuses (full disk, read-only or not-writable folder, a file where a
    folder should be, a name too long) is one :class:`FparError` naming ``path``; the file that was
    there before is left as it was.
    """
    path = Path(path)
    tmp = None
    try:
        tmp = _temp_beside(path)
        mode = 0o666 & ~_umask()  # mkstemp makes 0600; the final file gets the usual permissions
        os.chmod(tmp, mode)
        yield tmp
        os.chmod(tmp, mode)  # again: some writers (safetensors) replace the file they were given
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        failure = _write_failure(path, exc)
        if failure is None:
            raise
        raise failure from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, in one line, if the file ``path`` could not be written when its turn comes (after
    a long evaluation, say): its folder is made and a temporary file is created there and removed."""
    path = Path(path)
    try:
        _temp_beside(path).unlink()
    except OSError as exc:
        raise (_write_failure(path, exc) or exc) from None


def _temp_beside(path: Path) -> Path:
    """A new empty temporary file in ``path``'s folder (made if missing), named after ``path``."""
    if path.is_dir():
        raise FparError(f"{path} is a folder: give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def inside(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """``root / parts``, refused (:class:`FparError`) unless it lies inside ``root``.

    For every path built from a value a user, a config, a manifest or a label file gives: an
    absolute part, ``..`` or a symbolic link pointing elsewhere would otherwise write outside the
    output root. Both sides are resolved, so the check sees where the file will really go.
    """
    root = Path(root)
    path = root.joinpath(*parts)
    real_root, real = root.resolve(), path.resolve()
    if real != real_root and real_root not in real.parents:
        shown = "/".join(str(p) for p in parts)
        raise FparError(f"'{shown}' would be written outside {root} (to {real}): give a plain name")
    return path


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
    holder_file = path.with_name(path.name + ".holder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        raise FparError(f"{what}: another process is writing it (lock {path} is held by {_holder(holder_file)}); "
                        "wait for it or stop it first") from None
    except OSError as exc:
        raise FparError(f"{path}: cannot create lock file ({exc.strerror or exc})") from None
    try:
        try:  # who holds it, for the message a second writer gets; the lock itself is the flock
            write_text(holder_file, f"pid {os.getpid()} on {socket.gethostname()} since "
                                    f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}: {_command_line()}")
        except FparError:
            pass  # a lock whose holder cannot be recorded still locks
        yield
    finally:
        lock.release()


def _command_line() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv else "python"
    return " ".join(["fpar" if name == "__main__.py" else name, *sys.argv[1:]])[:300]


def _holder(holder_file: Path) -> str:
    try:
        return holder_file.read_text().strip()
    except OSError:
        return "a process that did not say which"


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
