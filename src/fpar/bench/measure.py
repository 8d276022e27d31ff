"""How ``fpar bench`` measures: alternate timing, the machine's matmul peak, FLOPs, peak memory,
and the setting (device, precision) fpar computes in.

**Share of the limit**: the model's FLOPs per clip (``torch.utils.flop_counter``, forward and,
for training, backward) times the rate, over the machine's matmul peak in the precision used
(the best of several large ``torch.mm``): convolutions and matmuls dominate these models, so
the peak of a large GEMM is the ceiling a perfect implementation would reach.

**Peak memory**: on a CPU the process's peak resident set over one call (``VmHWM``, reset before
the call through ``/proc/self/clear_refs``, or ``ru_maxrss`` where that is unavailable, which
never goes down); on a GPU ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fpar.engine.hardware import Hardware, autocast_dtype, choose_precision, describe, detect
from fpar.errors import FparError


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def compare(reference: Callable[[], object], ours: Callable[[], object], repeats: int,
            device: str = "cpu") -> tuple[float, float]:
    """Median seconds of each, timed alternately so that load from other processes hits both alike."""
    reference(), ours()  # warm-up: allocator, oneDNN primitive caches, lazy initialisation
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((reference, times[0]), (ours, times[1])):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def seconds(fn: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """Median seconds of ``fn`` after one warm-up call: for rows with no reference way."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device: str, dtype: torch.dtype, repeats: int = 3) -> float:
    """The machine's dense-arithmetic peak in ``dtype``, FLOP/s: the better of a large square
    ``torch.mm`` and a large 1x1 convolution (a plain GEMM inside oneDNN/cuDNN, no algorithmic
    shortcut), each the best of ``repeats`` runs.

    Both, because the two go to different libraries: on AMD CPUs MKL's fp32 GEMM (``torch.mm``)
    does not use AVX-512 while oneDNN's convolutions do (measured 90 against 183 GFLOP/s on two
    EPYC cores), so ``torch.mm`` alone would put the models' convolutions above 100% of "the peak".
    """
    size, batch = (8192, 64) if device == "cuda" else (1536, 4)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    x = torch.randn(batch, 1024, 28, 28, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(1024, 1024, 1, 1, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    candidates = ((lambda: torch.mm(a, b), 2 * size**3), (lambda: F.conv2d(x, w), 2 * batch * 28 * 28 * 1024 * 1024))
    best = 0.0
    with torch.inference_mode():
        for fn, flops in candidates:
            fn()
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                best = max(best, flops / (time.perf_counter() - start))
    return best


def _packed_convolution_flops(x_shape: torch.Size, w_shape: torch.Size, *args: object,
                              out_shape: torch.Size, **kwargs: object) -> int:
    """A packed convolution's FLOPs (``fpar.engine.packed_convolutions``), as PyTorch counts a conv's."""
    return 2 * math.prod(out_shape) * math.prod(w_shape[1:])


def count_flops(fn: Callable[[], object]) -> int:
    """The FLOPs of one call of ``fn``, as ``torch.utils.flop_counter`` counts them, packed convolutions included."""
    with FlopCounterMode(display=False, custom_mapping={
            torch.ops.mkldnn._convolution_pointwise: _packed_convolution_flops}) as counter:
        fn()
    return counter.get_total_flops()


def peak_memory(fn: Callable[[], object], device: str) -> int:
    """Peak bytes over one call of ``fn`` (see the module docstring for what is measured)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        fn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fn()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise FparError("/proc/self/status has no VmHWM line")


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.float() - theirs.float()).norm() / theirs.float().norm().clamp_min(1e-12))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch and one OpenCV thread inside (a worker's share of the machine), restored after."""
    import cv2

    saved = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])


class Setting:
    """Where and in what precision fpar computes; the reference is always fp32."""

    def __init__(self, device: str, precision: str, hardware: Hardware, reason: str):
        self.device = device
        self.precision = precision
        self.hardware = hardware
        self.reason = reason
        self.dtype = autocast_dtype(precision)
        self.peaks: dict[str, float] = {}  # matmul peak (FLOP/s) per precision, where measured

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device, self.dtype or torch.float32, enabled=self.dtype is not None)


def setting_for(device: str, precision: str = "auto") -> Setting:
    if device == "cuda" and not torch.cuda.is_available():
        raise FparError("--device cuda: no CUDA device is available to torch here")
    if device not in ("cpu", "cuda"):
        raise FparError(f"unknown device '{device}': choose cpu or cuda")
    hardware = detect(device)
    chosen, reason = choose_precision(hardware, precision)
    return Setting(device, "32-true" if chosen == "32" else chosen, hardware, reason)


def machine_info(setting: Setting, peaks: dict[str, float]) -> dict[str, Any]:
    hw = setting.hardware
    cpu = hw if hw.device == "cpu" else detect("cpu")  # loading and flow rows run on the CPU anyway
    return {"device": setting.device, "name": hw.name, "isa": hw.isa, "cuda_capability": hw.cuda_capability,
            "cpu": cpu.name, "cpu_isa": cpu.isa,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "precision": setting.precision, "precision_reason": setting.reason,
            # the instruction sets oneDNN may use: the CPU's, capped by ONEDNN_MAX_CPU_ISA where set
            "isa_cap": cpu.isa_cap, "hardware": describe(hw, setting.precision, setting.reason),
            # MKL (PyTorch's fp32 matrix products) has its own cap (docs/hardware.md)
            "mkl_cap": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
            "matmul_peak_flops": peaks}


def target_scope(quick: bool, size: int, stated_window: int, crop: int, met: bool, limit: float | None,
                 target_fps: float, peak_name: str) -> str:
    """Whether a stream row's target is met (in its own setting) and the machine's limit
    (:func:`limit_clause`)."""
    stated = not quick and size == stated_window and crop == 224  # the targets' own setting
    scope = (": met" if met else ": not met") if stated else f" (at 224 px, T = {stated_window})"
    return scope + limit_clause(limit, target_fps, peak_name)


def limit_clause(limit: float | None, target_fps: float, peak_name: str) -> str:
    """The machine's limit, ``limit`` frames/s at 100% of its measured ``peak_name`` matmul peak,
    and where the target is beyond it, by how much (``fpar bench`` writes it again when the peak
    measured at the end is higher)."""
    if limit is None:
        return ""
    clause = f"; this machine's limit {limit:.1f}/s at its {peak_name} matmul peak"
    return clause + (f": the target is beyond it, {target_fps / limit:.1f}x" if limit < target_fps else "")
