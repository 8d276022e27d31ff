"""Atomic file writes (a reader never sees a half-written file, a killed job leaves the old one),
one writer at a time (an OS file lock), paths that stay inside their root and never pass through a
planted symbolic link, outputs that are never one of their command's inputs, and code-free loading
of torch files (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
import struct
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

from fpar.errors import FparError
from fpar.locking import LOCK_PATIENCE, holder_file_of, holder_line, holder_of, take_over


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
    try:
        real_root, real = root.resolve(), path.resolve()
    except (RuntimeError, OSError):  # a symbolic link loop
        raise FparError(f"{path}: a symbolic link loop; give a real folder") from None
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
    lock a fresh file while the second still holds the old one. One exception: a lock whose holder
    (the process id recorded beside it, on this host) no longer runs is held only by a process that
    inherited it (an orphaned worker); it is taken over, under a second lock so that two reruns
    cannot both take it (:mod:`fpar.locking`). A lock file or folder that is a symbolic link is
    refused. A held lock is tried again for :data:`fpar.locking.LOCK_PATIENCE` seconds, the most a
    reader (:func:`fpar.locking.lock_holder`) holds it.
    """
    from filelock import FileLock, Timeout  # imported here: most users of this module never lock

    path = Path(path)
    holder_file = holder_file_of(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for link in (path.parent, path, holder_file):
            refuse_link(link)
        lock = FileLock(path, timeout=LOCK_PATIENCE)
        try:
            lock.acquire()
        except Timeout:
            lock = take_over(path, holder_file)
            if lock is None:
                raise
    except Timeout:
        raise FparError(f"{what}: another process is writing it (lock {path} is held by {holder_of(holder_file)}); "
                        "wait for it or stop it first") from None
    except OSError as exc:
        raise FparError(f"{path}: cannot create lock file ({exc.strerror or exc})") from None
    try:
        try:  # who holds it, for the message a second writer gets; the lock itself is the flock
            write_text(holder_file, holder_line())
        except FparError:
            pass  # a lock whose holder cannot be recorded still locks
        yield
    finally:
        lock.release()


def output_lock(path: str | os.PathLike, what: str) -> contextlib.AbstractContextManager:
    """The lock of one output (a file or folder) that a command writes whole: ``.locks/<name>.lock``
    beside it, so that a second writer of the same output is refused while the first writes."""
    path = Path(path)
    return exclusive_lock(path.parent / ".locks" / f"{path.name}.lock", what)


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders a killed write of ``path`` left beside it (the
    ``.<name>.*.tmp`` of :func:`atomic_path` and :func:`fresh_folder`); returns what was removed.
    Call it holding ``path``'s lock, so that a running writer's temporaries are never touched."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for leftover in path.parent.glob(f".{glob_escape(path.name[:200])}.*.tmp"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextlib.contextmanager
def fresh_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path``; when the block succeeds it replaces
    ``path`` whole (a previous ``path`` is moved aside and then removed), so a reader sees the old
    folder or the new one, never a mix. A killed write leaves ``.<name>.*.tmp`` folders that
    :func:`remove_leftovers` removes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise (_write_failure(path, exc) or exc) from None
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent))
            os.replace(path, old)  # an empty folder is replaced by a rename
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except (OSError, RuntimeError) as exc:
        failure = _write_failure(path, exc)
        if failure is None:
            raise
        raise failure from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def refuse_link(path: str | os.PathLike) -> None:
    """:class:`FparError` if ``path`` is a symbolic link: fpar never writes or deletes through a link
    planted where it writes (it could lead anywhere)."""
    path = Path(path)
    if path.is_symlink():
        raise FparError(f"{path} is a symbolic link (to {os.readlink(path)}); fpar does not write or delete "
                        "through links where it writes: remove it or give the real path")


def no_links_below(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path``, refused (:func:`refuse_link`) if it or a folder between ``root`` and it is a symbolic
    link. ``root`` itself may be one (the user named it); below it, a link would take a write or a
    delete out of the root."""
    root, path = Path(root), Path(path)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise FparError(f"{path} is not inside {root}") from None
    for i in range(1, len(parts) + 1):
        refuse_link(root.joinpath(*parts[:i]))
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file or folder: the same resolved path, or the same device and
    inode (a hard link, a bind mount)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, RuntimeError):  # missing, or a link loop
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_overwriting_inputs(output: str | os.PathLike, *inputs: str | os.PathLike | None,
                              option: str = "the output") -> None:
    """:class:`FparError` if ``output`` is one of the command's ``inputs`` (resolved, hard links
    included): an output never overwrites what the command reads."""
    for source in inputs:
        if source is not None and same_file(output, source):
            raise FparError(f"{option} {output} is one of the command's inputs ({source}); "
                            "choose another path, the input would be overwritten")


def die_with_parent(parent: int) -> None:
    """Make this worker process exit when ``parent`` (the process that started it) dies: on Linux the
    kernel sends it SIGKILL (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the main process leaves no
    orphaned worker holding memory or a lock. Elsewhere a no-op. Call it first thing in a worker."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


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
    # a few bytes that are no torch file reach the unpickler as garbage opcodes: each fails its own way
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError, TypeError,
            struct.error):
        raise FparError(f"{path} is not a readable {what} (corrupt, truncated or not a torch file)") from None
