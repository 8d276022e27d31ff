"""An output is never one of its command's inputs (resolved, hard links included); fpar never writes
or deletes through a symbolic link planted where it writes; a lock of a dead holder is taken over."""

import os
import subprocess
import sys

import pytest

from fpar.cli import main
from fpar.errors import FparError
from fpar.io import exclusive_lock, inside, no_links_below, refuse_overwriting_inputs, same_file


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "best.ckpt").write_bytes(b"checkpoint bytes")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a video bytes")
    os.link(tmp_path / "best.ckpt", tmp_path / "hard.ckpt")
    os.link(tmp_path / "clip.gif", tmp_path / "hard.gif")
    (tmp_path / "soft.gif").symlink_to(tmp_path / "clip.gif")
    (tmp_path / "data").mkdir()
    return tmp_path


CASES = [
    ("eval --predictions onto the checkpoint", ["eval", "{t}/best.ckpt", "--data", "{t}/data", "--predictions", "{t}/best.ckpt"]),
    ("eval --predictions onto its hard link", ["eval", "{t}/best.ckpt", "--data", "{t}/data", "--predictions", "{t}/hard.ckpt"]),
    ("eval --predictions through ..", ["eval", "{t}/best.ckpt", "--data", "{t}/data", "--predictions", "{t}/data/../best.ckpt"]),
    ("flow --out onto the video", ["flow", "{t}/clip.gif", "--out", "{t}/clip.gif"]),
    ("flow --out onto its hard link", ["flow", "{t}/clip.gif", "--out", "{t}/hard.gif"]),
    ("flow --out onto a link to it", ["flow", "{t}/clip.gif", "--out", "{t}/soft.gif"]),
    ("cam --out onto the video", ["cam", "{t}/best.ckpt", "{t}/clip.gif", "--out", "{t}/clip.gif"]),
    ("import-reference onto its source", ["import-reference", "rgb_attention", "{t}/best.ckpt", "{t}/hard.ckpt"]),
]


@pytest.mark.parametrize("args", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(inputs, args, capsys):
    before = {p.name: p.read_bytes() for p in inputs.iterdir() if p.is_file()}
    assert main([a.format(t=inputs) for a in args]) == 1
    err = capsys.readouterr().err
    assert "is one of the command's inputs" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in inputs.iterdir() if p.is_file()} == before


def test_same_file_and_refusal_in_the_library(inputs):
    assert same_file(inputs / "best.ckpt", inputs / "hard.ckpt") and not same_file(inputs / "best.ckpt", inputs / "x")
    refuse_overwriting_inputs(inputs / "new.csv", inputs / "best.ckpt", None)
    with pytest.raises(FparError, match="one of the command's inputs"):
        refuse_overwriting_inputs(inputs / "hard.gif", inputs / "best.ckpt", inputs / "clip.gif")


PLANTED = ["the lock folder", "the lock file", "the holder file"]


@pytest.mark.parametrize("where", PLANTED)
def test_a_link_planted_in_a_lock_folder_is_refused(tmp_path, where):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    locks = tmp_path / "runs" / ".locks"
    if where == "the lock folder":
        locks.parent.mkdir()
        locks.symlink_to(elsewhere)
    else:
        locks.mkdir(parents=True)
        (locks / ("run.lock" if where == "the lock file" else "run.lock.holder")).symlink_to(elsewhere / "victim")
    with pytest.raises(FparError, match="is a symbolic link"):
        with exclusive_lock(locks / "run.lock", "run"):
            pass
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("planted", ["a/b", "a", "a/b/c.partial"])
def test_no_links_below_refuses_every_link_between_root_and_path(tmp_path, planted):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = root / planted
    if link.exists():
        os.rename(link, tmp_path / "moved")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    with pytest.raises(FparError, match="is a symbolic link"):
        no_links_below(root, root / "a" / "b" / "c.partial")
    no_links_below(link if planted == "a" else root, (link if planted == "a" else root) / "x")  # the root itself may be one


def test_an_out_that_is_a_symlink_loop_is_one_line(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    with pytest.raises(FparError, match="symbolic link loop"):
        inside(loop, "run")


def test_the_lock_of_a_holder_that_no_longer_runs_is_taken_over(tmp_path):
    """A prepare killed with -9 left its lock held by an orphan that inherited it: the holder file
    names the dead process; the rerun takes the lock over (and a live holder still refuses)."""
    lock = tmp_path / ".locks" / "S1.lock"
    orphan = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time\n"
                               f"os.makedirs({str(lock.parent)!r}, exist_ok=True)\n"
                               f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "held"
        holder = lock.with_name("S1.lock.holder")
        import socket
        holder.write_text(f"pid {orphan.pid} on {socket.gethostname()} since now: fpar prepare")
        with pytest.raises(FparError, match="another process is writing it"):  # the holder runs
            with exclusive_lock(lock, "S1"):
                pass
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        holder.write_text(f"pid {dead.stdout.strip()} on {socket.gethostname()} since now: fpar prepare")
        with exclusive_lock(lock, "S1"):
            assert holder.read_text().startswith(f"pid {os.getpid()} ")
    finally:
        orphan.kill()
        orphan.wait()


def test_a_worker_dies_with_its_killed_parent(tmp_path):
    """kill -9 of the main `prepare --workers 2` process left its workers running on, holding locks."""
    import signal
    import time

    parent = subprocess.Popen([sys.executable, "-c",
                               "import os, sys, time\nfrom fpar.io import die_with_parent\nparent = os.getpid()\n"
                               "child = os.fork()\nif child == 0:\n    die_with_parent(parent)\n"
                               "    print(os.getpid(), flush=True)\n    time.sleep(60)\n    os._exit(0)\n"
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")
