"""What this machine computes fast, and the numeric precision fpar trains and evaluates in.

``trainer.precision: auto`` (the default) picks per machine, at run time:

* CUDA: ``bf16-mixed`` where the GPU has bfloat16 tensor cores (compute capability 8.0 on),
  ``16-mixed`` before that. bf16 keeps fp32's exponent range, so no loss scaling is needed.
* CPU with bfloat16 instructions (``avx512_bf16`` or ``amx_bf16``): ``bf16-mixed``. oneDNN then
  runs convolutions and matmuls on bf16 dot-product instructions at about twice fp32's rate and
  half its memory traffic (measured 1.7x on the RGB model's forward on an AVX-512-BF16 EPYC).
* any other CPU: ``32-true``. Without bf16 instructions oneDNN emulates bf16 by converting to fp32
  and back, about 5x slower than plain fp32 on AVX2 machines.

An explicit precision (config or ``--precision``) always wins. The detector takes the CPU flags
and CUDA capability as data (:class:`Hardware`) so the choice is testable on any machine.

``ONEDNN_MAX_CPU_ISA`` (oneDNN's own setting, e.g. ``AVX2``) caps the instruction sets oneDNN
dispatches to; the detector caps the CPU flags it reports the same way, so ``auto`` and every
figure that names the instruction set decide as on a CPU that has no more than that
(docs/hardware.md). CI runs the numerics tests a second time under ``ONEDNN_MAX_CPU_ISA=AVX2``.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any, Callable
from pathlib import Path

import torch

from fpar.errors import FparError
from fpar.progress import quiet

AUTO = "auto"
# instruction sets worth naming in a report, in the order they appeared
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA), lowest first, each with the flag it needs first; a cap
# keeps the flags of its own level and those below. AVX10 names are AVX-512 with more on top.
ONEDNN_ISA_LEVELS = (
    ("SSE41", "sse4_1"), ("AVX", "avx"), ("AVX2", "avx2"), ("AVX2_VNNI", "avx_vnni"),
    ("AVX2_VNNI_2", "avx_ne_convert"), ("AVX512_CORE", "avx512f"), ("AVX512_CORE_VNNI", "avx512_vnni"),
    ("AVX512_CORE_BF16", "avx512_bf16"), ("AVX512_CORE_FP16", "avx512_fp16"), ("AVX10_1_512", "avx512_fp16"),
    ("AVX512_CORE_AMX", "amx_bf16"), ("AVX10_1_512_AMX", "amx_bf16"), ("AVX512_CORE_AMX_FP16", "amx_fp16"),
    ("AVX10_1_512_AMX_FP16", "amx_fp16"), ("AVX10_2_512", "avx10_2"), ("AVX10_2_512_AMX_2", "amx_fp8"),
)
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


@dataclass(frozen=True)
class Hardware:
    """The compute device as far as precision and speed are concerned."""

    device: str  # "cpu" or "cuda"
    name: str  # CPU model or GPU name
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cuda_capability: tuple[int, int] | None = None
    isa_cap: str | None = None  # ONEDNN_MAX_CPU_ISA where set: cpu_flags are already capped by it

    @property
    def isa(self) -> list[str]:
        return [flag for flag in ISA_FLAGS if flag in self.cpu_flags]

    @property
    def fast_bf16(self) -> bool:
        if self.device == "cuda":
            return self.cuda_capability is not None and self.cuda_capability >= (8, 0)
        return any(flag in self.cpu_flags for flag in BF16_CPU_FLAGS)


def cpu_flags() -> tuple[str, frozenset[str]]:
    """CPU model name and instruction-set flags, from /proc/cpuinfo where there is one.

    Elsewhere (macOS, Windows) torch's dispatch level stands in: it says AVX2/AVX512 but not
    whether bf16 instructions exist, so such machines get fp32 unless told otherwise.
    """
    name, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not flags:
                name = value.strip()
            elif key == "flags":
                flags = set(value.split())
                break
    if not flags:
        capability = torch.backends.cpu.get_cpu_capability()
        flags = {"avx2"} if capability.startswith("AVX") else set()
        if capability == "AVX512":
            flags.add("avx512f")
    return name, frozenset(flags)


def isa_cap() -> str | None:
    """oneDNN's instruction-set cap from the environment (``ONEDNN_MAX_CPU_ISA``, or its older
    name ``DNNL_MAX_CPU_ISA``), upper-cased; None where unset or ``ALL``."""
    for variable in ISA_CAP_VARIABLES:
        value = os.environ.get(variable, "").strip().upper()
        if value and value != "ALL":
            return value
    return None


def cap_flags(flags: frozenset[str], cap: str | None) -> frozenset[str]:
    """``flags`` less those of the instruction-set levels above ``cap`` (a oneDNN ISA name).

    >>> sorted(cap_flags(frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}), "AVX2"))
    ['avx2']
    >>> sorted(cap_flags(frozenset({"avx2", "avx512f", "avx512_bf16"}), "AVX512_CORE"))
    ['avx2', 'avx512f']

    An unknown name caps nothing (oneDNN ignores it too)."""
    names = [name for name, _ in ONEDNN_ISA_LEVELS]
    if cap is None or cap not in names:
        return flags
    above = {flag for name, flag in ONEDNN_ISA_LEVELS[names.index(cap) + 1:]}
    above -= {flag for name, flag in ONEDNN_ISA_LEVELS[:names.index(cap) + 1]}
    if names.index(cap) < names.index("AVX512_CORE"):
        above |= {flag for flag in flags if flag.startswith(("avx512", "amx"))}
    if names.index(cap) < names.index("AVX512_CORE_AMX"):
        above |= {flag for flag in flags if flag.startswith("amx")}
    return frozenset(flags - above)


def onednn_isa(hardware: Hardware) -> str | None:
    """The highest of oneDNN's instruction-set levels (:data:`ONEDNN_ISA_LEVELS`) whose flag the CPU
    has after the cap: what oneDNN dispatches its convolutions and matmuls to (``fpar env``).

    >>> onednn_isa(Hardware("cpu", "x", frozenset({"avx", "avx2", "avx512f"})))
    'AVX512_CORE'
    """
    first_name = {}  # an AVX10 name sharing its flag with an older name is that level again
    for name, flag in ONEDNN_ISA_LEVELS:
        first_name.setdefault(flag, name)
    found = [first_name[flag] for _, flag in ONEDNN_ISA_LEVELS if flag in hardware.cpu_flags]
    return found[-1] if hardware.device == "cpu" and found else None


def detect(device: str = "cpu") -> Hardware:
    """The machine's :class:`Hardware` for ``device`` ("cpu" or "cuda")."""
    if device == "cuda":
        index = torch.cuda.current_device()
        return Hardware("cuda", torch.cuda.get_device_name(index),
                        cuda_capability=tuple(torch.cuda.get_device_capability(index)))
    name, flags = cpu_flags()
    cap = isa_cap()
    return Hardware("cpu", name, cpu_flags=cap_flags(flags, cap), isa_cap=cap)


def device_for(accelerator: str) -> str:
    """The device Lightning's ``accelerator`` setting will train on; a GPU asked for where PyTorch
    sees none is an FparError."""
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise FparError(f"accelerator={accelerator}: this PyTorch ({torch.__version__}) sees no CUDA device")
        return "cuda"
    return "cuda" if accelerator == "auto" and torch.cuda.is_available() else "cpu"


def choose_precision(hardware: Hardware, requested: str = AUTO) -> tuple[str, str]:
    """``(precision, reason)``: ``requested`` unless it is ``auto``, else the machine's best."""
    if requested != AUTO:
        return requested, "set explicitly"
    if hardware.device == "cuda":
        if hardware.fast_bf16:
            return "bf16-mixed", f"GPU compute capability {hardware.cuda_capability} has bf16 tensor cores"
        return "16-mixed", f"GPU compute capability {hardware.cuda_capability} has fp16 but no bf16 tensor cores"
    if hardware.fast_bf16:
        found = [flag for flag in BF16_CPU_FLAGS if flag in hardware.cpu_flags]
        return "bf16-mixed", f"CPU has bf16 instructions ({', '.join(found)})"
    return "32-true", "CPU has no bf16 instructions (emulated bf16 is slower than fp32)"


def describe(hardware: Hardware, precision: str, reason: str) -> str:
    """The one line a run prints at start."""
    capped = f", capped by ONEDNN_MAX_CPU_ISA={hardware.isa_cap}" if hardware.isa_cap else ""
    isa = f" [{' '.join(hardware.isa)}{capped}]" if hardware.device == "cpu" and hardware.isa else ""
    return f"fpar: precision {precision} on {hardware.device} ({hardware.name}{isa}): {reason}"


def resolve_precision(requested: str, accelerator: str = "auto", *, announce: bool | Callable[[str], Any] = True,
                      hardware: Hardware | None = None) -> str:
    """The precision a run uses; says why (one line) when ``announce`` and the choice was ``auto``'s:
    an explicit setting needs no explaining. ``announce=True`` prints it on stderr; a function
    (a logger's ``info``: a run's train.log) is given the line instead."""
    hardware = hardware or detect(device_for(accelerator))
    precision, reason = choose_precision(hardware, requested)
    if announce and requested == AUTO:
        line = describe(hardware, precision, reason)
        if callable(announce):
            announce(line)
        elif not quiet():  # fpar --quiet: no status lines
            print(line, file=sys.stderr, flush=True)  # a status line, not output
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a Lightning precision string; None for full precision."""
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
