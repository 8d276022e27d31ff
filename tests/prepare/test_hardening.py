"""User mistakes and hostile inputs give one line naming the path, and leave nothing half-written."""

import errno
import os
from pathlib import Path

import pytest

from fpar.cli import main
from fpar.errors import FparError
from fpar.prepare import import_gtea, prepare_video

from .conftest import make_raw_gtea, moving_square, write_gif

KEY = dict(subject="S1", class_name="open_jar", instance_id="clip")


def leftovers(root: Path) -> list[str]:
    """Every folder and file under ``root`` except the lock files, which stay by design."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".locks" not in p.parts)


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_gif(tmp_path / "clip.gif", moving_square(n=6))


# 1e-300 and 1e39 used to pass and write all-zero flow that `data check` called usable
@pytest.mark.parametrize("bound", ["nan", "-5", "0", "inf", "1e-300", "0.49", "1e39", "100.5"])
def test_cli_bound_must_be_finite_and_positive(tmp_path, clip, bound, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(clip), "--out", str(tmp_path / "out"), "--subject", "S1", "--class", "x",
              f"--bound={bound}"])
    assert exit_.value.code == 2
    assert "must be a number of pixels from 0.5 to 100" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bound", [float("nan"), -5.0, 0.0, 1e-300, 1e39])
def test_library_bound_must_be_finite_and_positive(tmp_path, clip, bound):
    with pytest.raises(FparError, match="flow bound must be a number of pixels from 0.5 to 100"):
        prepare_video(clip, tmp_path / "out", flow="dis", bound=bound, progress=False, **KEY)
    assert not (tmp_path / "out").exists()


def test_a_label_line_naming_no_folder_is_skipped_not_fatal(tmp_path):
    make_raw_gtea(tmp_path / "raw")
    labels = tmp_path / "raw/labels/S2_Jam_C1.txt"
    labels.write_text(labels.read_text() + "<a/b><c> (1-6)\n")
    result = import_gtea(tmp_path / "raw", tmp_path / "out", flow="dis", progress=False)
    assert len(result.written) == 3
    [bad] = [p for p in result.problems if "S2_Jam_C1.txt:8:" in p]
    assert "invalid class name 'a/b_c'" in bad and "skipped" in bad


def test_out_is_a_file(tmp_path, clip, capsys):
    (tmp_path / "out").write_text("not a folder")
    assert main(["prepare", str(clip), "--out", str(tmp_path / "out"), "--subject", "S1", "--class", "x",
                 "--flow", "dis"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"fpar: error: {tmp_path / 'out'}: is a file, not a folder (give a dataset folder to write into)"


def test_read_only_out(tmp_path, clip, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the permission check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == out else real_access(path, mode))
    else:
        out.chmod(0o555)
    try:
        assert main(["prepare", str(clip), "--out", str(out / "data"), "--subject", "S1", "--class", "x",
                     "--flow", "dis"]) == 1
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert err.strip() == f"fpar: error: {out}: not writable (permission denied), cannot write {out / 'data'}"
    assert list(out.iterdir()) == []


def test_disk_full_names_the_path_and_leaves_nothing(tmp_path, clip, capsys, monkeypatch):
    real_write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "prepare.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out"
    assert main(["prepare", str(clip), "--out", str(out), "--subject", "S1", "--class", "x", "--flow", "dis"]) == 1
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("failed")]
    assert "prepare.json: cannot write (No space left on device)" in line and "Traceback" not in err
    assert leftovers(out) == []


def test_a_300_character_class_name(tmp_path, clip, capsys):
    out = tmp_path / "out"
    assert main(["prepare", str(clip), "--out", str(out), "--subject", "S1", "--class", "c" * 300,
                 "--flow", "dis"]) == 1
    err = capsys.readouterr().err
    assert "class name too long (300 bytes, at most 246)" in err and "Traceback" not in err
    assert not out.exists() or leftovers(out) == []


def test_names_cannot_lead_outside_the_output_folder(tmp_path, clip):
    out = tmp_path / "out"
    for bad in ("..", "../x", ".hidden", "a\\b", ""):
        with pytest.raises(FparError, match="invalid class name"):
            prepare_video(clip, out, flow="dis", progress=False, subject="S1", class_name=bad, instance_id="i")
    # a subject folder that is a link to elsewhere
    (tmp_path / "elsewhere").mkdir()
    (out / "processed_frames").mkdir(parents=True)
    (out / "processed_frames" / "S1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FparError, match="resolves outside the output folder"):
        prepare_video(clip, out, flow="dis", progress=False, **KEY)
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("planted", [".clip.partial", "clip", "open_jar"])
def test_a_link_planted_in_the_output_root_is_refused_and_its_target_untouched(tmp_path, clip, planted):
    """A planted `.inst.partial` link made prepare write an instance elsewhere."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    parent = out / "processed_frames" / "S1" / ("open_jar" if planted != "open_jar" else "")
    parent.mkdir(parents=True)
    (parent / planted).symlink_to(elsewhere)
    with pytest.raises(FparError, match="is a symbolic link|resolves outside the output folder"):
        prepare_video(clip, out, flow="dis", progress=False, **KEY)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
