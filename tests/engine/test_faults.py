"""Bad inputs and faults around training and evaluation: each is refused or reported as one line
(`fpar: error: ...`, no traceback), nothing is mixed, and nothing lands outside the output root."""

import shutil
import subprocess
import sys
import time

import cv2
import pytest
import yaml

from fpar.cli import main
from fpar.engine.evaluate import evaluate
from fpar.engine.train import train
from fpar.errors import FparError

from helpers.output import one_line_error
from helpers.tiny import subprocess_env, tiny_config, write_config


@pytest.fixture
def tiny_yaml(tmp_path):
    return write_config(tmp_path / "tiny.yaml", tiny_config())


@pytest.fixture
def data_copy(tiny_data, tmp_path):
    """A private copy of the tiny dataset, to break."""
    return shutil.copytree(tiny_data, tmp_path / "data")


def corrupt(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is no image" + b"\0" * 32 + b"IEND\xaeB`\x82")
    return path


def train_cli(config, data, out, *overrides) -> int:
    return main(["train", str(config), "--data", str(data), "--out", str(out), "--no-progress", *overrides])


# --- one writer per run folder ----------------------------------------------------------------------


def test_a_second_train_into_a_run_folder_being_written_is_refused_naming_the_holder(tiny_yaml, tiny_data, tmp_path,
                                                                                      capsys):
    from fpar.engine.run_folder import run_folder_lock

    out = tmp_path / "runs"
    with run_folder_lock(out, "tiny"):  # what a running `fpar train` holds while it writes runs/tiny
        assert train_cli(tiny_yaml, tiny_data, out, "trainer.seed=1") == 1
    line = one_line_error(capsys)
    assert f"run folder {out / 'tiny'}: another process is writing it (lock {out / '.locks' / 'tiny.lock'} is held by pid " in line
    assert not (out / "tiny").exists()  # the refused run wrote nothing into the folder


def test_two_trains_started_together_never_mix_one_run_folder(tiny_yaml, tiny_data, tmp_path):
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "fpar", "train", str(tiny_yaml), "--data", str(tiny_data), "--out", str(out),
               "--no-progress"]
    # the first run is long; the second starts once the first is writing the folder
    first = subprocess.Popen([*command, "trainer.seed=0", "trainer.epochs=500"], env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while first.poll() is None and not (out / "tiny" / "config.yaml").exists():
            time.sleep(0.05)
        second = subprocess.run([*command, "trainer.seed=1", "trainer.epochs=1"], env=subprocess_env(),
                                capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run ended before the second started"
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 1, second.stderr[-2000:]
    assert f"fpar: error: run folder {out / 'tiny'}: another process is writing it (lock {out / '.locks' / 'tiny.lock'} is held by pid {first.pid} " \
        in second.stderr and "Traceback" not in second.stderr
    saved = yaml.safe_load((out / "tiny" / "config.yaml").read_text())
    assert saved["trainer"]["seed"] == 0 and saved["trainer"]["epochs"] == 500  # the first run's config, not mixed


# --- nothing outside the output root ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../escape", "/tmp/fpar-escape", "a/b", ".."])
def test_an_experiment_name_that_is_a_path_is_refused_before_anything_is_written(name, tiny_yaml, tiny_data,
                                                                                  tmp_path, capsys):
    out = tmp_path / "deep" / "er" / "runs"
    assert train_cli(tiny_yaml, tiny_data, out, f"experiment={name}") == 1
    assert "experiment: must be a plain name" in one_line_error(capsys)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "deep").exists()
    with pytest.raises(FparError, match="experiment: must be a plain name"):
        train(tiny_config(experiment=name), data_root=tiny_data, out_dir=out, progress=False)


# --- errors in DataLoader workers and DDP processes: the worker's own line -----------------------------


def test_a_corrupt_frame_read_by_a_training_worker_is_one_line_naming_it(tiny_yaml, data_copy, tmp_path, capsys):
    bad = corrupt(data_copy / "processed_frames" / "S1" / "close_red" / "1" / "rgb" / "rgb0003.png")
    assert train_cli(tiny_yaml, data_copy, tmp_path / "runs", "data.workers=2") == 1
    assert one_line_error(capsys) == f"fpar: error: instance S1/close_red/1: {bad}: corrupt image (cannot decode)"
    assert not (tmp_path / "runs" / "tiny").exists()  # and no half run folder is left


def test_a_run_stopped_by_an_error_after_its_first_epoch_is_failed_and_resumes_once_fixed(tiny_yaml, data_copy,
                                                                                          tmp_path, capsys):
    import json

    out = tmp_path / "runs"
    assert train_cli(tiny_yaml, data_copy, out, "trainer.epochs=1") == 0
    clip = data_copy / "processed_frames" / "S1" / "close_red" / "1" / "rgb"
    frames = {path: path.read_bytes() for path in clip.glob("*.png")}
    for path in frames:
        corrupt(path)
    assert train_cli(tiny_yaml, data_copy, out, "--resume", "trainer.epochs=2") == 1
    error = one_line_error(capsys).removeprefix("fpar: error: ")
    assert (out / "tiny" / "train.log").read_text().splitlines()[-1][20:] == f"failed: {error}"
    assert main(["runs", str(out), "--json"]) == 0
    assert [run["state"] for run in json.loads(capsys.readouterr().out)] == ["failed"]
    for path, image in frames.items():  # the data fixed: --resume continues from the epoch kept
        path.write_bytes(image)
    assert train_cli(tiny_yaml, data_copy, out, "--resume", "trainer.epochs=2") == 0
    assert capsys.readouterr().out.startswith("tiny: finished after 2 epochs, ")


def test_a_corrupt_frame_read_by_an_evaluation_worker_is_one_line_naming_it(trained_run, data_copy, capsys):
    bad = corrupt(data_copy / "flow_x_processed" / "S2" / "open_green" / "2" / "flow_x_00003.png")
    assert main(["eval", trained_run["best_ckpt"], "--data", str(data_copy), "--workers", "2"]) == 1
    assert one_line_error(capsys) == f"fpar: error: instance S2/open_green/2: {bad}: corrupt image (cannot decode)"


def test_a_corrupt_frame_in_one_ddp_process_is_one_line_per_process(trained_run, data_copy):
    # the second clip of S2 is scored by process 1, whose error must reach the user; process 0 then
    # loses its peer and says so in one line instead of a gloo traceback
    bad = corrupt(data_copy / "flow_x_processed" / "S2" / "close_red" / "2" / "flow_x_00003.png")
    done = subprocess.run([sys.executable, "-m", "fpar", "eval", trained_run["best_ckpt"], "--data", str(data_copy),
                           "--devices", "2", "--accelerator", "cpu"], env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("fpar: error: ")]
    assert f"fpar: error: instance S2/close_red/2: {bad}: corrupt image (cannot decode)" in errors, done.stderr
    assert len(errors) <= 2


# --- write errors ----------------------------------------------------------------------------------------


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_leaves_no_half_run(tiny_yaml, tiny_data, small_disk,
                                                                                  capsys):
    disk = small_disk("2m")  # config, metrics and logs fit; a checkpoint (~120 MB) does not
    assert train_cli(tiny_yaml, tiny_data, disk, "trainer.epochs=1") == 1
    line = one_line_error(capsys)
    assert line.startswith(f"fpar: error: cannot write {disk / 'tiny'}/") and line.endswith(
        ".ckpt: no space left on the device"), line
    assert not (disk / "tiny").exists()
    assert not [p for p in disk.rglob("*.tmp")]


def test_a_full_disk_keeps_the_last_good_checkpoint_of_a_resumed_run(tiny_yaml, tiny_data, small_disk, capsys):
    disk = small_disk("400m")
    assert train_cli(tiny_yaml, tiny_data, disk, "trainer.epochs=1") == 0
    last = disk / "tiny" / "last.ckpt"
    before = last.read_bytes()
    ballast = disk / "ballast"
    with ballast.open("wb") as f:  # fill the disk up to the last few KiB
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    capsys.readouterr()
    assert train_cli(tiny_yaml, tiny_data, disk, "trainer.epochs=2", "--resume") == 1
    assert "no space left on the device" in one_line_error(capsys)
    assert last.read_bytes() == before  # the resumable state is whole
    assert (disk / "tiny" / "config.yaml").is_file() and (disk / "tiny" / "best.ckpt").is_file()


def test_a_read_only_output_is_one_line_for_train_and_eval(tiny_yaml, tiny_data, trained_run, read_only_dir, capsys):
    assert train_cli(tiny_yaml, tiny_data, read_only_dir / "runs") == 1
    assert str(read_only_dir) in one_line_error(capsys)
    predictions = read_only_dir / "predictions.csv"
    assert main(["eval", trained_run["best_ckpt"], "--data", str(tiny_data), "--predictions", str(predictions)]) == 1
    line = one_line_error(capsys)
    assert line.startswith(f"fpar: error: cannot write {predictions}: "), line


def test_an_unwritable_predictions_file_is_refused_before_evaluating(tiny_data, read_only_dir, monkeypatch, capsys):
    import fpar.engine.inference as inference_module

    def no_evaluation(*args, **kwargs):
        raise AssertionError("the model was loaded: the evaluation started before the output was checked")

    monkeypatch.setattr(inference_module, "load_model", no_evaluation)
    predictions = read_only_dir / "out" / "predictions.csv"
    assert main(["eval", "model.ckpt", "--data", str(tiny_data), "--predictions", str(predictions)]) == 1
    assert one_line_error(capsys).startswith(f"fpar: error: cannot write {predictions}: ")


# --- numbers nobody checked ------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=.nan", "optimizer.lr: must be > 0.0 (got nan)"),
    ("optimizer.lr=-1", "optimizer.lr: must be > 0.0"),
    ("trainer.seed=99999999999999", "trainer.seed: must be <= 4294967295"),
    ("trainer.seed=-1", "trainer.seed: must be >= 0"),
    ("trainer.batch_size=0", "trainer.batch_size: must be >= 1"),
    ("data.workers=-1", "data.workers: must be >= 0"),
])
def test_bad_numbers_in_a_config_are_one_line_and_leave_no_run_folder(override, message, tiny_yaml, tiny_data,
                                                                      tmp_path, capsys):
    assert train_cli(tiny_yaml, tiny_data, tmp_path / "runs", override) == 1
    assert message in one_line_error(capsys)
    assert not (tmp_path / "runs" / "tiny").exists()


@pytest.mark.parametrize("args, message", [
    (["--workers", "-1"], "argument --workers: must be at least 0, got -1"),
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--devices", "0"], "argument --devices: must be at least 1, got 0"),
    (["--batch-size", "x"], "argument --batch-size: not an integer: 'x'"),
])
def test_bad_numbers_on_the_eval_command_line_are_refused_where_they_enter(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["eval", "model.ckpt", "--data", "data", *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--devices", "0"], ["--devices", "-2"], ["--num-nodes", "0"]])
def test_bad_process_counts_on_the_train_command_line_are_refused(args, tiny_yaml, capsys):
    with pytest.raises(SystemExit):
        main(["train", str(tiny_yaml), *args])
    assert "must be at least 1" in capsys.readouterr().err


def test_more_evaluation_processes_than_clips_is_refused_up_front(trained_run, tiny_data):
    with pytest.raises(FparError, match=r"^8 processes for 7 clips of S2: give --devices 7 or fewer$"):
        evaluate(trained_run["best_ckpt"], tiny_data, devices=8)


# --- a frame of another size within an instance ---------------------------------------------------------


def test_a_frame_of_another_size_is_refused_by_eval_and_train_naming_it(trained_run, data_copy, tmp_path, capsys):
    odd = data_copy / "flow_x_processed" / "S2" / "stir_blue" / "1" / "flow_x_00003.png"
    image = cv2.imread(str(odd), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(odd), cv2.resize(image, None, fx=2, fy=2))  # the same picture, twice the size
    expected = (f"instance S2/stir_blue/1: {odd}: frame is 96x96, the instance's others 48x48 "
                "(frames of one instance must share one size)")
    with pytest.raises(FparError) as caught:
        evaluate(trained_run["best_ckpt"], data_copy)
    assert str(caught.value) == expected
    config = write_config(tmp_path / "flow.yaml", trained_run["config"])
    assert train_cli(config, data_copy, tmp_path / "runs") == 1
    assert one_line_error(capsys) == f"fpar: error: {expected}"


# --- a failed run leaves no half run folder ----------------------------------------------------------------


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_run_folder(tiny_yaml, tiny_data, tmp_path, capsys):
    out = tmp_path / "runs"
    assert train_cli(tiny_yaml, tiny_data, out, "data.val_subjects=[S9]") == 1
    assert "empty validation split (subjects S9" in one_line_error(capsys)
    assert not (out / "tiny").exists()


def test_a_failed_run_removes_only_what_it_wrote(tiny_yaml, data_copy, tmp_path, capsys):
    out = tmp_path / "runs"
    earlier = out / "tiny"
    earlier.mkdir(parents=True)
    (earlier / "notes.md").write_text("kept")  # a file of someone else's, in the run folder
    corrupt(data_copy / "processed_frames" / "S3" / "open_green" / "2" / "rgb" / "rgb0001.png")
    assert train_cli(tiny_yaml, data_copy, out) == 1
    assert "corrupt image" in one_line_error(capsys)
    assert sorted(p.name for p in earlier.iterdir()) == ["notes.md"]  # config.yaml, tensorboard/ removed


# --- loading never runs code ---------------------------------------------------------------------------------


def test_a_config_or_recipe_asking_to_run_code_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    config = tmp_path / "evil.yaml"
    config.write_text(f"experiment: {payload}\n")
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(f"stages: {payload}\n")
    assert main(["train", str(config), "--data", str(tmp_path)]) == 1
    assert "is not valid YAML" in one_line_error(capsys)
    assert main(["run", str(recipe_file)]) == 1
    assert "is not valid YAML" in one_line_error(capsys)
    assert not marker.exists()
