"""Exports that cannot be mixed or tampered with unnoticed, and that never overwrite their input:
the weights' hash in fpar.json, a fresh folder renamed into place, one writer at a time."""

import json
import os
import shutil

import pytest

from fpar.checkpoint import EXPORT_WEIGHTS_HASH, export_model, load_checkpoint, load_model, save_checkpoint
from fpar.cli import main
from fpar.data import ClipSettings
from fpar.errors import FparError
from fpar.io import output_lock
from fpar.models import build_model


def checkpoint(path, seed: int, classes=("a", "b", "c")):
    import torch

    torch.manual_seed(seed)
    model = build_model("flow_resnet", num_classes=len(classes), backbone="resnet18", pretrained=None, stack_size=2)
    save_checkpoint(path, model_state=model.state_dict(), model=model.build_spec,
                    clip=ClipSettings(modalities=["flow"], resize=40, crop=32, stack_size=2), classes=list(classes))
    return path


@pytest.fixture(scope="module")
def made_once(module_tmp):
    folder = module_tmp("exports")
    export_model(checkpoint(folder / "a.ckpt", 0), folder / "A")
    export_model(checkpoint(folder / "b.ckpt", 1, classes=("x", "y", "z")), folder / "B")
    return folder


@pytest.fixture
def two_exports(made_once, tmp_path):
    """Checkpoints a.ckpt, b.ckpt and their exports A, B in ``tmp_path`` (copies: tests change them)."""
    for name in ("a.ckpt", "b.ckpt"):
        shutil.copy(made_once / name, tmp_path / name)
    for name in ("A", "B"):
        shutil.copytree(made_once / name, tmp_path / name)
    return tmp_path / "A", tmp_path / "B"


def test_the_contract_records_the_weights_hash_and_reads_back(two_exports):
    a, _ = two_exports
    assert len(json.loads((a / "fpar.json").read_text())[EXPORT_WEIGHTS_HASH]) == 64
    model, contract = load_model(a)
    assert contract.classes == ["a", "b", "c"] and EXPORT_WEIGHTS_HASH not in load_checkpoint(a)["fpar"]
    assert sorted(p.name for p in a.iterdir()) == ["fpar.json", "model.safetensors"]


@pytest.mark.parametrize("how", ["weights of another export", "same-size garbage", "one byte flipped", "no hash"])
def test_a_mixed_or_tampered_export_is_one_line_naming_the_file(two_exports, how, capsys):
    a, b = two_exports
    weights = a / "model.safetensors"
    if how == "weights of another export":  # a kill between two writers' renames, before exports were folders
        weights.write_bytes((b / "model.safetensors").read_bytes())
    elif how == "same-size garbage":
        data = bytearray(weights.read_bytes())
        header = 8 + int.from_bytes(data[:8], "little")
        data[header:] = os.urandom(len(data) - header)
        weights.write_bytes(bytes(data))
    elif how == "one byte flipped":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    else:
        contract = json.loads((a / "fpar.json").read_text())
        del contract[EXPORT_WEIGHTS_HASH]
        (a / "fpar.json").write_text(json.dumps(contract))
    with pytest.raises(FparError, match="fpar.json|model.safetensors") as error:
        load_model(a)
    assert "\n" not in str(error.value)
    assert main(["eval", str(a), "--data", str(a)]) != 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_second_export_into_one_folder_is_refused_while_the_first_writes(two_exports, tmp_path):
    a, _ = two_exports
    before = (a / "fpar.json").read_bytes()
    with output_lock(a, f"export {a}"):
        with pytest.raises(FparError, match="another process is writing it"):
            export_model(tmp_path / "b.ckpt", a)
    assert (a / "fpar.json").read_bytes() == before
    export_model(tmp_path / "b.ckpt", a)  # after it: replaced whole
    assert load_model(a)[1].classes == ["x", "y", "z"]


def test_a_killed_exports_temporaries_are_removed_by_the_next_export(two_exports, tmp_path):
    a, _ = two_exports
    (tmp_path / ".A.k1ll3d.tmp").mkdir()
    (tmp_path / ".A.k1ll3d.tmp" / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".A.x.tmp").write_bytes(b"half")
    export_model(tmp_path / "a.ckpt", a)
    assert not [p.name for p in tmp_path.glob(".A.*")]


@pytest.mark.parametrize("out", ["the export itself", "its weights' folder via a link"])
def test_an_export_onto_its_own_input_is_refused(two_exports, tmp_path, out):
    a, _ = two_exports
    before = (a / "model.safetensors").read_bytes()
    target = a
    if out != "the export itself":
        target = tmp_path / "link"
        target.symlink_to(a)
    with pytest.raises(FparError, match="one of the command's inputs"):
        export_model(a / "model.safetensors", target)
    assert (a / "model.safetensors").read_bytes() == before


def test_an_export_into_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(FparError, match="holds other files"):
        export_model(checkpoint(tmp_path / "a.ckpt", 0), tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("data", [b"h", b"a", b"j", b"hello", b"\x80", b"}q\x00.", b"PK\x03\x04"])
def test_a_few_bytes_that_are_no_torch_file_are_one_line(tmp_path, data, capsys):
    (tmp_path / "best.ckpt").write_bytes(data)
    with pytest.raises(FparError, match="is not a readable checkpoint"):
        load_checkpoint(tmp_path / "best.ckpt")
    assert main(["predict", str(tmp_path / "best.ckpt"), str(tmp_path / "clip.gif")]) == 1
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and err.count("\n") == 1


@pytest.mark.parametrize("config", ["a string", ["a", "list"], 3])
def test_an_export_whose_config_is_not_a_mapping_is_one_line(two_exports, config):
    a, _ = two_exports
    contract = json.loads((a / "fpar.json").read_text())
    contract["config"] = config
    (a / "fpar.json").write_text(json.dumps(contract))
    with pytest.raises(FparError, match="fpar.config must be a mapping"):
        load_model(a)


def test_a_checkpoint_whose_clip_does_not_give_what_its_model_reads_is_one_line(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from fpar.checkpoint import read_contract
    from fpar.engine.predict import predict_video

    path = checkpoint(tmp_path / "flow.ckpt", 0)
    ckpt = load_checkpoint(path)
    ckpt["fpar"]["clip"]["modalities"] = ["frames"]  # a flow model told it reads RGB frames
    import torch
    torch.save(ckpt, path)
    frames = [Image.fromarray(np.full((40, 40, 3), 20 * k, np.uint8)) for k in range(8)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(FparError, match=r"its model 'flow_resnet' reads 'flow' but its clip settings .* give \['frames'\]"):
        predict_video(path, tmp_path / "clip.gif")
    assert read_contract(load_checkpoint(path), path).clip.modalities == ["frames"]


def test_an_export_onto_a_full_disk_is_one_line_and_keeps_the_previous_export(two_exports, tmp_path, small_disk, capsys):
    """It was a SafetensorError traceback."""
    a, _ = two_exports
    disk = small_disk("64m")  # room for one export of a flow ResNet-18 (45 MB), not for a second beside it
    shutil.copytree(a, disk / "A")
    assert main(["export", str(tmp_path / "b.ckpt"), str(disk / "A")]) == 1
    assert capsys.readouterr().err == f"fpar: error: cannot write {disk / 'A'}: no space left on the device\n"
    assert load_model(disk / "A")[1].classes == ["a", "b", "c"] and not list(disk.glob(".A.*"))
