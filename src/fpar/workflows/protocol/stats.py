"""Mean, standard deviation and 95% interval over a protocol's runs (t distribution).
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t distribution (0.5 < probability < 1), from
    scipy.stats: 12.706 for (0.975, 1), 2.776 for (0.975, 4), 1.960 as ``dof`` grows."""
    if not 0.5 < probability < 1 or dof < 1:
        raise ValueError("t_quantile needs 0.5 < probability < 1 and dof >= 1")
    from scipy.stats import t as student_t  # loads only when a summary needs it

    return float(student_t.ppf(probability, dof))


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std" (n - 1), "ci95": [low, high] (t distribution), "n"}``; std and interval are
    null for a single value."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}
