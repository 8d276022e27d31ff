import pytest

from fpar.engine.config import validate_config
from fpar.engine.hardware import Hardware, cap_flags, choose_precision, cpu_flags, detect, isa_cap, resolve_precision

from helpers.tiny import tiny_config

AVX2 = Hardware("cpu", "an AVX2 CPU", cpu_flags=frozenset({"sse4_2", "avx2", "fma"}))
AVX512 = Hardware("cpu", "an AVX-512 CPU", cpu_flags=frozenset({"avx2", "avx512f"}))
BF16 = Hardware("cpu", "a bf16 CPU", cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
AMX = Hardware("cpu", "an AMX CPU", cpu_flags=frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"}))


@pytest.mark.parametrize("hardware, expected", [
    (AVX2, "32-true"),
    (AVX512, "32-true"),
    (BF16, "bf16-mixed"),
    (AMX, "bf16-mixed"),
    (Hardware("cuda", "A100", cuda_capability=(8, 0)), "bf16-mixed"),
    (Hardware("cuda", "H100", cuda_capability=(9, 0)), "bf16-mixed"),
    (Hardware("cuda", "V100", cuda_capability=(7, 0)), "16-mixed"),
])
def test_auto_picks_by_instruction_set(hardware, expected):
    precision, reason = choose_precision(hardware)
    assert precision == expected and reason


@pytest.mark.parametrize("explicit", ["32", "32-true", "bf16-mixed", "16-mixed"])
def test_explicit_precision_wins(explicit):
    assert choose_precision(AVX2, explicit)[0] == explicit
    assert choose_precision(BF16, explicit) == (explicit, "set explicitly")


def test_choice_printed_in_one_line(capsys):
    assert resolve_precision("auto", hardware=AVX2) == "32-true"
    line = capsys.readouterr().err
    assert line.count("\n") == 1
    assert "32-true" in line and "an AVX2 CPU" in line and "[avx2]" in line and "no bf16" in line
    assert resolve_precision("auto", hardware=BF16, announce=False) == "bf16-mixed"
    assert capsys.readouterr().err == ""


def test_isa_lists_what_matters():
    assert BF16.isa == ["avx2", "avx512f", "avx512_bf16"]
    assert AMX.isa == ["avx2", "avx512f", "amx_bf16"]


def test_detect_this_cpu():
    hardware = detect("cpu")
    name, flags = cpu_flags()
    assert hardware.device == "cpu" and hardware.name == name
    assert hardware.cpu_flags == cap_flags(flags, isa_cap())  # ONEDNN_MAX_CPU_ISA where CI sets it
    assert choose_precision(hardware)[0] in ("32-true", "bf16-mixed")


@pytest.mark.parametrize("cap, kept", [
    ("AVX2", ["avx2"]),
    ("avx512_core", ["avx2", "avx512f"]),
    ("AVX512_CORE_BF16", ["avx2", "avx512f", "avx512_bf16"]),
    ("AVX512_CORE_AMX", ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]),
    ("ALL", ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]),
    ("", ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]),
])
def test_onednn_cap_decides_as_on_that_cpu(monkeypatch, cap, kept):
    """ONEDNN_MAX_CPU_ISA=AVX2 on an AMX machine: auto picks fp32 and the line names the cap, as an
    AVX2 user's machine would, so CI checks an AVX2 user's `make test` on its own CPU."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    flags = frozenset({"sse4_2", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    capped = Hardware("cpu", "an AMX CPU", cpu_flags=cap_flags(flags, isa_cap()), isa_cap=isa_cap())
    assert capped.isa == kept
    assert choose_precision(capped)[0] == ("bf16-mixed" if "avx512_bf16" in kept else "32-true")


def test_config_precision_defaults_to_auto():
    config = tiny_config()
    for key in ("precision", "compile"):
        config["trainer"].pop(key, None)
    config = validate_config(config)
    assert config.trainer.precision == "auto"
    assert config.trainer.compile is False
