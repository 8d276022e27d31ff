"""exclusive_lock: one holder at a time, a clear error for the second."""

import pytest

from fpar.errors import FparError
from fpar.io import exclusive_lock


def test_second_holder_is_refused_and_the_lock_is_free_again_after(tmp_path):
    lock = tmp_path / "locks" / "a.lock"
    with exclusive_lock(lock, "S1/open_jar/clip"):
        with pytest.raises(FparError, match="S1/open_jar/clip: another process is writing it"):
            with exclusive_lock(lock, "S1/open_jar/clip"):
                pass
    with exclusive_lock(lock, "S1/open_jar/clip"):
        pass
