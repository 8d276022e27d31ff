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


# --- the file system refuses a write: one line naming the path, the previous file intact -------------


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so_in_one_line(small_disk):
    import torch

    from fpar.errors import FparError

    disk = small_disk("256k")
    target = disk / "last.ckpt"
    torch.save({"epoch": 1}, target)
    before = target.read_bytes()
    with pytest.raises(FparError) as caught:  # torch.save's own error here is "enforce fail at inline_container.cc"
        with atomic_path(target) as tmp:
            torch.save({"weights": torch.zeros(200_000)}, tmp)
    assert str(caught.value) == f"cannot write {target}: no space left on the device"
    assert target.read_bytes() == before
    assert sorted(p.name for p in disk.iterdir()) == ["last.ckpt"]  # the temporary file is gone


def test_a_read_only_folder_is_one_line_naming_the_file(read_only_dir):
    from fpar.errors import FparError

    with pytest.raises(FparError, match=rf"^cannot write {read_only_dir}/a/report.md: .*(read-only|permission)"):
        write_text(read_only_dir / "a" / "report.md", "x")


def test_a_file_in_place_of_a_folder_and_a_too_long_name_are_one_line(tmp_path):
    from fpar.errors import FparError

    (tmp_path / "cam").write_text("a file")
    with pytest.raises(FparError, match=r"cannot write .*cam/cam.gif: .*cam: a file is in the way"):
        write_text(tmp_path / "cam" / "cam.gif", "x")
    with pytest.raises(FparError, match="file name too long"):
        write_text(tmp_path / ("x" * 300), "x")


# --- paths built from user values stay inside their root -------------------------------------------


def test_inside_refuses_every_way_out_of_the_root(tmp_path):
    from fpar.errors import FparError
    from fpar.io import inside

    root = tmp_path / "runs"
    assert inside(root, "rgb-stage1") == root / "rgb-stage1"
    assert inside(root, "a", "b.csv") == root / "a" / "b.csv"
    (tmp_path / "elsewhere").mkdir()
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    for parts in (["../../../escape"], ["/tmp/abs"], ["a/../../x"], [".."], ["link"], ["link", "x"]):
        with pytest.raises(FparError, match="would be written outside"):
            inside(root, *parts)


# --- a DataLoader worker's error reaches the user as its own line -------------------------------------


class _BrokenFrames:
    def __len__(self):
        return 2

    def __getitem__(self, index):
        from fpar.errors import NotADatasetError

        raise NotADatasetError(f"/data/S1/a/rgb{index:04d}.png: corrupt image (cannot decode)")


def test_an_error_in_a_dataloader_worker_is_its_own_line_of_its_own_type():
    from torch.utils.data import DataLoader

    from fpar.errors import NotADatasetError

    with pytest.raises(NotADatasetError) as caught:
        next(iter(DataLoader(_BrokenFrames(), num_workers=1)))
    assert str(caught.value) == "/data/S1/a/rgb0000.png: corrupt image (cannot decode)"


def test_check_writable_probes_without_touching_the_file(tmp_path, read_only_dir):
    from fpar.errors import FparError
    from fpar.io import check_writable

    target = tmp_path / "out" / "predictions.csv"
    check_writable(target)
    target.write_text("old")
    check_writable(target)
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["predictions.csv"]
    with pytest.raises(FparError, match=rf"^cannot write {read_only_dir}/p.csv: "):
        check_writable(read_only_dir / "p.csv")
