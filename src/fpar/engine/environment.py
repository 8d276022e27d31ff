"""What decides fpar's numbers and speed on this machine, for bug reports (``fpar env``) and for
``fpar bench --json`` (docs/bug_report.md).

The machine (CPU model, the instruction set oneDNN dispatches to and its cap, cores, threads, GPUs),
the choices fpar makes from it (``trainer.precision: auto``, ``data.workers: auto``), the versions
of the libraries that compute, and where fpar keeps files. Versions are read from the installed
packages' metadata: nothing but torch is imported.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import torch

from fpar.data.settings import MAX_AUTO_WORKERS, default_workers
from fpar.data.frames import MAX_PIXELS_VARIABLE
from fpar.data.store import default_store_path
from fpar.engine.hardware import ISA_CAP_VARIABLES, choose_precision, detect, onednn_isa

# name shown -> the distributions that provide it (the first installed one is reported)
LIBRARIES = {
    "torch": ("torch",), "lightning": ("lightning",), "torchmetrics": ("torchmetrics",),
    "numpy": ("numpy",), "opencv": ("opencv-contrib-python-headless", "opencv-python-headless",
                                    "opencv-contrib-python", "opencv-python"),
    "av": ("av",), "onnx": ("onnx",), "onnxscript": ("onnxscript",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "pydantic": ("pydantic",), "safetensors": ("safetensors",), "simplejpeg": ("simplejpeg",),
}
# extras fpar uses when present (pyproject.toml's optional dependencies)
OPTIONAL = ("onnx", "onnxscript", "onnxruntime", "wandb", "mlflow")
# the environment variables that change what fpar computes or how fast
VARIABLES = (*ISA_CAP_VARIABLES, "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "CUDA_VISIBLE_DEVICES", "TORCH_HOME", MAX_PIXELS_VARIABLE)


def version_of(name: str) -> str | None:
    """The installed version of ``name`` (a key of :data:`LIBRARIES` or a distribution), or None."""
    for distribution in LIBRARIES.get(name, (name,)):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


def environment() -> dict[str, Any]:
    """Everything ``fpar env`` prints, as plain JSON values."""
    from fpar import __version__

    cpu = detect("cpu")
    gpus = [{"index": i, "name": torch.cuda.get_device_name(i),
             "capability": list(torch.cuda.get_device_capability(i)),
             "memory_bytes": torch.cuda.get_device_properties(i).total_memory}
            for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    device = "cuda" if gpus else "cpu"
    precision, reason = choose_precision(detect(device) if gpus else cpu)
    cap = cpu.isa_cap
    return {
        "fpar": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {
            "model": cpu.name,
            "onednn_isa": onednn_isa(cpu),
            "onednn_isa_cap": cap,
            "flags": cpu.isa,
            "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "cpus": os.cpu_count(),
            "usable_cores": usable_cores(),
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
        },
        "gpus": gpus,
        "choices": {
            "device": device,
            "precision": precision,
            "precision_reason": reason,
            "workers": default_workers(),
            "workers_reason": f"one per usable CPU core ({usable_cores()}), at most {MAX_AUTO_WORKERS}",
        },
        "versions": {name: version_of(name) for name in LIBRARIES},
        "optional": {name: version_of(name) is not None for name in OPTIONAL},
        "locations": {
            "package": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            "python": sys.executable,
            "imagenet_weights": os.path.join(torch.hub.get_dir(), "checkpoints"),
            "dataset_store": f"{default_store_path('DATA', 256)} in each dataset DATA (data.store: true, resize 256)",
            "runs": "runs/ under the working folder unless --out says otherwise",
        },
        "variables": {name: os.environ[name] for name in VARIABLES if name in os.environ},
    }


def format_environment(env: dict[str, Any]) -> str:
    """``fpar env``'s text: one ``key: value`` line each, grouped."""
    cpu, choices = env["cpu"], env["choices"]
    isa = cpu["onednn_isa"] or "-"
    if cpu["onednn_isa_cap"]:
        isa += f" (capped by ONEDNN_MAX_CPU_ISA={cpu['onednn_isa_cap']})"
    gpus = "; ".join(f"cuda:{g['index']} {g['name']} (compute capability {g['capability'][0]}.{g['capability'][1]}, "
                     f"{g['memory_bytes'] / 2**30:.1f} GiB)" for g in env["gpus"]) or "none"
    lines = [
        f"fpar:              {env['fpar']} (Python {env['python']}, {env['platform']})",
        f"CPU:               {cpu['model']}",
        f"oneDNN ISA:        {isa}",
        f"CPU flags:         {' '.join(cpu['flags']) or '-'} (ATen dispatch: {cpu['aten_capability']})",
        f"cores:             {cpu['usable_cores']} usable of {cpu['cpus']}",
        f"threads:           {cpu['threads']} intra-op, {cpu['interop_threads']} inter-op",
        f"GPU:               {gpus}",
        f"precision auto:    {choices['precision']} on {choices['device']}: {choices['precision_reason']}",
        f"data.workers auto: {choices['workers']}: {choices['workers_reason']}",
        "versions:          " + ", ".join(f"{name} {version or '-'}" for name, version in env["versions"].items()),
        "optional:          " + ", ".join(f"{name} {'yes' if present else 'no'}"
                                          for name, present in env["optional"].items()),
    ]
    lines += [f"{name + ':':<19}{where}" for name, where in env["locations"].items()]
    lines += [f"${name}: {value}" for name, value in env["variables"].items()] or ["variables:         none set"]
    return "\n".join(lines)
