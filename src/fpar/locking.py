"""Who holds a lock of :func:`fpar.io.exclusive_lock`: the holder file written beside each lock
(``<lock>.holder``: ``pid N on HOST since ...: COMMAND``), whether that process still runs, taking
over a stale lock (its holder gone, the lock kept only by a process that inherited it), and
:func:`lock_holder` for readers that ask whether a folder is being written (``fpar runs``).
The lock itself is the operating system's ``flock``, through the filelock package.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import sys
from pathlib import Path

# How long a writer waits for a held lock before it is refused: longer than lock_holder's glance.
LOCK_PATIENCE = 0.5


def holder_file_of(lock: Path) -> Path:
    """The file beside ``lock`` that says who holds it."""
    return lock.with_name(lock.name + ".holder")


def holder_line() -> str:
    """What the holder file says of this process."""
    name = os.path.basename(sys.argv[0]) if sys.argv else "python"
    command = " ".join(["fpar" if name == "__main__.py" else name, *sys.argv[1:]])[:300]
    return f"pid {os.getpid()} on {socket.gethostname()} since " \
           f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}: {command}"


def holder_of(holder_file: Path) -> str:
    try:
        return holder_file.read_text().strip()
    except OSError:
        return "a process that did not say which"


def holder_is_gone(holder_file: Path) -> bool:
    """Whether the holder file names a process of this host that no longer runs."""
    try:
        found = re.match(r"pid (\d+) on (\S+) since", holder_file.read_text())
    except (OSError, UnicodeDecodeError):
        return False
    if found is None or found.group(2) != socket.gethostname() or int(found.group(1)) == os.getpid():
        return False
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return True
    except OSError:  # runs, under another user
        return False
    return False


def take_over(path: Path, holder_file: Path):
    """A fresh lock in place of ``path`` when its recorded holder no longer runs, else None."""
    from filelock import FileLock, Timeout

    if not holder_is_gone(holder_file):
        return None
    with FileLock(path.with_name(path.name + ".takeover"), timeout=10):
        lock = FileLock(path, timeout=0)
        try:  # another rerun may have taken it over while this one waited
            lock.acquire()
            return lock
        except Timeout:
            if not holder_is_gone(holder_file):
                return None
        path.unlink(missing_ok=True)
        lock = FileLock(path, timeout=0)
        lock.acquire()
        return lock


def lock_holder(path: str | os.PathLike) -> str | None:
    """Who holds the lock ``path`` now, as its holder file says; None when no live process holds
    it: never taken, released, its holder killed (the OS released it), or kept only by a process
    that inherited it from a holder that is gone (a stale lock, which the next writer takes over).
    Read by trying a shared lock for an instant, never by creating the file; a writer that meets
    that instant waits for it (:data:`LOCK_PATIENCE`)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released when the descriptor closes, below
        return None
    except BlockingIOError:
        holder_file = holder_file_of(Path(path))
        return None if holder_is_gone(holder_file) else holder_of(holder_file)
    finally:
        os.close(fd)
