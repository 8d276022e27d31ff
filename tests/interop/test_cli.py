"""`fpar import-reference` and `fpar models` through the CLI entry point."""

import pickle

import pytest
import torch

from fpar.checkpoint import load_checkpoint, load_model
from fpar.cli import main
from fpar.models import list_models
from interop.parity_cases import batch_from_case, expected_outputs, load_case, reference_weights, relative_error


def reference_file(tmp_path, case, wrap=None):
    weights = {key: torch.from_numpy(value) for key, value in reference_weights(load_case(case)).items()}
    path = tmp_path / f"{case}.pth"
    torch.save({wrap: weights, "epoch": 7} if wrap else weights, path)
    return path, weights


def test_import_reference_round_trip(tmp_path, capsys):
    source, _ = reference_file(tmp_path, "rgb_ms_task", wrap="state_dict")
    names = tmp_path / "classes.txt"
    names.write_text("".join(f"class_{i}\n" for i in range(61)) + "\n")
    target = tmp_path / "imported.ckpt"
    assert main(["import-reference", "rgb_ms_task", str(source), str(target), "--classes", str(names)]) == 0
    assert "wrote" in capsys.readouterr().out

    model, info = load_model(target)
    assert info.classes == [f"class_{i}" for i in range(61)]
    assert info.model["name"] == "rgb_ms" and info.model["ms_input_sigmoid"] is True
    assert info.clip.modalities == ["frames"] and info.config is None  # the contract comes from interop
    assert all(key.startswith("model.") for key in load_checkpoint(target)["state_dict"])

    # the checkpoint computes what the reference code computed (ms-task sigmoid included)
    with torch.no_grad():
        out = model(batch_from_case(load_case("rgb_ms_task")))
    for name, ref in expected_outputs("rgb_ms_task").items():
        assert relative_error(out[name], ref) < 1e-4, name


@pytest.mark.parametrize("wrap", [None, "model_state_dict"])
def test_plain_and_wrapped_state_dicts(tmp_path, wrap):
    source, weights = reference_file(tmp_path, "flow_resnet34", wrap=wrap)
    target = tmp_path / "flow.ckpt"
    assert main(["import-reference", "flow_resnet34", str(source), str(target)]) == 0
    model, info = load_model(target)
    assert info.classes is None
    assert info.model == {**info.model, "name": "flow_resnet", "stack_size": 5, "num_classes": 61}
    assert (info.clip.modalities, info.clip.flow_mode, info.clip.stack_size) == (["flow"], "stack", 5)
    assert torch.equal(model.classifier[1].weight, weights["fc_action.weight"])


def test_class_count_must_match(tmp_path, capsys):
    source, _ = reference_file(tmp_path, "flow_resnet34")
    names = tmp_path / "classes.txt"
    names.write_text("a\nb\n")
    target = tmp_path / "out.ckpt"
    assert main(["import-reference", "flow_resnet34", str(source), str(target), "--classes", str(names)]) == 1
    assert "2 classes but the checkpoint has 61" in capsys.readouterr().err
    assert not target.exists()


class CreatesFile:
    """Unpickling this calls open(marker, "w"): loading it would run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_runs_code_is_refused(tmp_path, capsys):
    source, marker, target = tmp_path / "evil.pth", tmp_path / "ran", tmp_path / "out.ckpt"
    with open(source, "wb") as handle:
        pickle.dump({"fc.weight": CreatesFile(marker)}, handle, protocol=2)
    assert main(["import-reference", "rgb_attention", str(source), str(target)]) == 1
    assert "could run code" in capsys.readouterr().err
    assert not marker.exists() and not target.exists()


def test_bad_state_dict_is_one_line_error(tmp_path, capsys):
    source = tmp_path / "junk.pth"
    torch.save({"fc.weight": torch.zeros(3, 512)}, source)
    assert main(["import-reference", "rgb_attention", str(source), str(tmp_path / "out.ckpt")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fpar: error:") and error.count("\n") == 1


def test_models_lists_the_registry_with_parameter_counts(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == list_models()
    counts = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines}
    # ResNet-34 (21.8M) + ConvLSTM(512 -> 512, 3x3: 18.9M) + classifier
    assert 40_000_000 < counts["rgb_attention"] < 41_000_000
    assert counts["two_stream"] > counts["rgb_attention"] + counts["flow_resnet"] - 1_000_000


def test_import_into_a_read_only_folder_is_one_line_and_writes_nothing(tmp_path, read_only_dir, capsys):
    source, _ = reference_file(tmp_path, "flow_resnet34")
    target = read_only_dir / "flow.ckpt"
    assert main(["import-reference", "flow_resnet34", str(source), str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fpar: error: cannot write {target}: ") and len(err.splitlines()) == 1, err
    assert list(read_only_dir.iterdir()) == []
