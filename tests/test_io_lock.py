"""exclusive_lock: one holder at a time, a clear error for the second."""

import pytest

from fpar.errors import FparError
from fpar.io import exclusive_lock
from fpar.locking import lock_holder


def test_second_holder_is_refused_and_the_lock_is_free_again_after(tmp_path):
    lock = tmp_path / "locks" / "a.lock"
    with exclusive_lock(lock, "S1/open_jar/clip"):
        with pytest.raises(FparError, match="S1/open_jar/clip: another process is writing it"):
            with exclusive_lock(lock, "S1/open_jar/clip"):
                pass
    with exclusive_lock(lock, "S1/open_jar/clip"):
        pass


def test_the_second_writer_is_told_who_holds_the_lock(tmp_path):
    import os
    import subprocess
    import sys

    lock = tmp_path / "locks" / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fpar.io import exclusive_lock\n"
                               f"with exclusive_lock({str(lock)!r}, 'run'):\n print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holder(lock).startswith(f"pid {holder.pid} on ")  # what `fpar runs` reads as running
        with pytest.raises(FparError, match=rf"run: another process is writing it \(lock {lock} is held by pid {holder.pid} on "):
            with exclusive_lock(lock, "run"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert lock.with_name("run.lock.holder").is_file() and lock_holder(lock) is None  # stale: nobody holds it
    with exclusive_lock(lock, "run"):  # a killed holder's lock is free: the OS released it
        pass
