import os
import stat

import pytest

from fpar.io import atomic_path, write_text


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "report.md", "hello")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o644


def test_writing_onto_a_folder_is_a_clear_error(tmp_path):
    from fpar.errors import FparError

    with pytest.raises(FparError, match="is a folder"):
        write_text(tmp_path, "x")
