"""``fpar bench``'s table: the machine, then one line per row (rates, speed-up, share of the
matmul peak, peak memory, the check)."""

from __future__ import annotations

from typing import Any


def _gib(value: int | None) -> str:
    return f"{value / 2**30:.2f}G" if value is not None else "-"


def _pct(value: float | None) -> str:
    return f"{100 * value:.0f}%" if value is not None else "-"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:10.2f}" if value >= 0.1 else f"{value:10.4f}"


def format_table(result: dict[str, Any]) -> str:
    m = result["machine"]
    peaks = ", ".join(f"{name} {flops / 1e9:.0f}" for name, flops in m["matmul_peak_flops"].items()) or "-"
    cpu = f"{m.get('cpu', m['name'])} [{' '.join(m.get('cpu_isa', m['isa']))}]"
    where = cpu if m["device"] == "cpu" else f"{m['name']} (sm {m['cuda_capability']}); cpu: {cpu}"
    lines = [f"{m['device']}: {where}, {m['threads']} threads, torch {m['torch']}",
             # the instruction sets oneDNN used (the CPU's, capped by ONEDNN_MAX_CPU_ISA) and the precision
             f"{m.get('hardware') or 'fpar: precision ' + m['precision']}; matmul peak GFLOP/s: {peaks}",
             "reference: per-frame fp32 NCHW, autograd on; %peak = achieved FLOP/s over the matmul peak of "
             "the precision used; loading and flow rows: one worker, one thread"]
    if m.get("isa_cap") and not m.get("mkl_cap"):
        lines.append(f"note: ONEDNN_MAX_CPU_ISA={m['isa_cap']} caps oneDNN only; PyTorch's fp32 matrix products (MKL) "
                     f"use every instruction set of this CPU: set MKL_ENABLE_INSTRUCTIONS too (docs/hardware.md)")
    lines.append("")
    width = max([44, *(len(r["name"]) for r in result["rows"])])  # names whole: rows differ at their ends
    head = (f"{'benchmark':{width}s} {'B':>3s} {'T':>3s} {'reference':>10s} {'fpar':>10s} {'unit':9s} {'speed-up':>8s} "
            f"{'%peak':>11s} {'peak memory':>13s}  check")
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        speedup = f"{r['speedup']:7.2f}x" if r.get("speedup") is not None else f"{'-':>8s}"
        lines.append(f"{r['name']:{width}s} {r.get('batch') or '-':>3} {r.get('frames') or '-':>3} "
                     f"{_rate(r.get('reference_rate')):>10s} {_rate(r.get('fpar_rate')):>10s} {r.get('unit', ''):9s} "
                     f"{speedup} {_pct(r.get('reference_peak_fraction')):>5s}/{_pct(r.get('fpar_peak_fraction')):>5s} "
                     f"{_gib(r.get('reference_peak_memory')):>6s}/{_gib(r.get('fpar_peak_memory')):>6s}  "
                     f"{r['agreement']}")
    return "\n".join(lines)
