"""Deletion and addition scenario specs: the paper's sizes (Tables I and IX) and defaults.

This module imports only NumPy, because the workflow resolves every
dataset's scenarios while Snakemake parses the rules. Drawing the subsets and
running the methods lives in :mod:`modelpred.evaluation`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SCENARIOS = ("deletion", "addition")
DEFAULT_TRIALS = 10

_PAPER_300 = {
    "deletion": {"start": 300, "sizes": {"step": 5, "last": 150}},
    "addition": {"start": 150, "sizes": {"step": 5, "last": 150}},
}
PAPER_SCENARIOS: dict[str, dict[str, Any]] = {
    "iris": {
        "deletion": {"start": 63, "sizes": {"step": 5, "last": 30}},
        "addition": {"start": 67, "sizes": {"step": 1, "last": 17}},
    },
    "spam": _PAPER_300,
    "higgs": _PAPER_300,
    "magic": _PAPER_300,
    "mnist": _PAPER_300,
    "hymenoptera": {
        "deletion": {"start": 208, "sizes": {"step": 5, "last": 100}},
        "addition": {"start": 108, "sizes": {"step": 5, "last": 100}},
    },
    "mnist-2000": {
        "deletion": {"start": 2000, "sizes": {"step": 50, "last": 1000}},
        "addition": {"start": 1000, "sizes": {"step": 50, "last": 1000}},
    },
    "mnist-10000": {"deletion": {"start": 10000, "sizes": {"step": 100, "last": 5000}}},
    "adult": {"deletion": {"start": 10000, "sizes": {"step": 5, "last": 500}}},
}
"""Scenario sizes of Tables I and IX of the ModelPred paper (10 trials each), by dataset name."""


# ---------------------------------------------------------------- specs
def scenario_sizes(entry: Mapping[str, Any]) -> np.ndarray:
    """Return the sizes of one scenario entry as an int64 array.

    Parameters
    ----------
    entry : mapping
        ``{"start": int, "sizes": list of int | {"first", "step", "last"}}``.

    Returns
    -------
    ndarray of int64, shape (s,)
        Positive, strictly increasing sizes.
    """
    sizes = entry.get("sizes")
    if isinstance(sizes, Mapping):
        unknown = set(sizes) - {"first", "step", "last"}
        if unknown or "step" not in sizes or "last" not in sizes:
            raise ValueError(
                "a sizes range needs 'step' and 'last' (and optionally 'first'), "
                f"got keys {sorted(sizes)}"
            )
        step, last = int(sizes["step"]), int(sizes["last"])
        first = int(sizes.get("first", step))
        if step < 1 or first < 1:
            raise ValueError(
                f"sizes range needs first ≥ 1 and step ≥ 1, got first={first}, step={step}"
            )
        values = np.arange(first, last + 1, step, dtype=np.int64)
    elif isinstance(sizes, Sequence) and not isinstance(sizes, str):
        values = np.asarray(list(sizes), dtype=np.int64)
    else:
        raise ValueError(f"'sizes' must be a list of integers or a range mapping, got {sizes!r}")
    if len(values) == 0:
        raise ValueError(f"scenario sizes {sizes!r} are empty; give at least one size")
    if values.min() < 1 or np.any(np.diff(values) <= 0):
        raise ValueError(
            f"scenario sizes must be positive and strictly increasing, got {values.tolist()}"
        )
    return values


def default_scenarios(
    n_train: int, n_pool: int, subgroup_size: int | None = None, trials: int = DEFAULT_TRIALS
) -> dict[str, Any]:
    """Derive deletion and addition sizes from the split sizes.

    Deletion starts from all n training points and removes step, 2·step, …
    up to n/2 points (step = n/60 rounded, at least 1), so about 30 sizes.
    Addition starts from n/2 training points and adds the same steps up to
    min(n/2, n_pool) pool points; there is no addition without a pool. With
    a subgroup of g points, deletion removes g/100 (rounded, at least 1) up
    to all g subgroup points, and there is no addition.

    Parameters
    ----------
    n_train, n_pool : int
        Training and pool points.
    subgroup_size : int, optional
        Points of the subgroup that deletion is restricted to.
    trials : int
        Trials per scenario.

    Returns
    -------
    dict
        A scenario spec (see the module docstring).
    """
    if n_train < 2:
        raise ValueError(f"need at least 2 training points for a scenario, got {n_train}")
    spec: dict[str, Any] = {"trials": int(trials)}
    if subgroup_size is not None:
        step = max(1, round(subgroup_size / 100))
        spec["deletion"] = {"start": n_train, "sizes": {"step": step, "last": int(subgroup_size)}}
        return spec

    half = n_train // 2
    step = max(1, round(n_train / 60))
    spec["deletion"] = {"start": n_train, "sizes": {"step": step, "last": half}}
    limit = min(half, n_pool)
    if limit >= 1:
        spec["addition"] = {"start": half, "sizes": {"step": min(step, limit), "last": limit}}
    return spec


def _entry_fits(
    name: str, entry: Mapping[str, Any], n_train: int, n_pool: int, subgroup_size: int | None
) -> bool:
    """Return whether a scenario entry is valid for the given split sizes."""
    start = int(entry["start"])
    last = int(scenario_sizes(entry)[-1])
    if start > n_train:
        return False
    if name == "addition":
        return last <= n_pool
    if subgroup_size is not None:
        return start == n_train and last <= subgroup_size
    return last < start


def resolve_scenarios(
    dataset_name: str,
    n_train: int,
    n_pool: int,
    subgroup_size: int | None = None,
    override: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the scenario spec of a dataset: paper sizes or defaults, then overrides.

    The paper's sizes (:data:`PAPER_SCENARIOS`) are looked up by the full name
    and then by the part before the first ``-``. Each of its entries is used
    when it fits the dataset's split sizes and replaced by the entry of
    :func:`default_scenarios` otherwise. A dataset the paper does not list gets
    the defaults. The keys of ``override`` replace whole entries (``trials``,
    ``deletion`` or ``addition``), and an entry set to None removes that
    scenario.

    Returns
    -------
    dict
        A scenario spec (see the module docstring).
    """
    defaults = default_scenarios(n_train, n_pool, subgroup_size)
    paper = PAPER_SCENARIOS.get(dataset_name) or PAPER_SCENARIOS.get(dataset_name.split("-")[0])
    if paper is None:
        spec = defaults
    else:
        spec = {"trials": DEFAULT_TRIALS}
        for name, entry in paper.items():
            if _entry_fits(name, entry, n_train, n_pool, subgroup_size):
                spec[name] = copy.deepcopy(entry)
            elif name in defaults:
                logger.info(
                    "dataset '%s' (n_train=%d, n_pool=%d) does not fit the paper's %s sizes; "
                    "using sizes derived from the split sizes",
                    dataset_name,
                    n_train,
                    n_pool,
                    name,
                )
                spec[name] = defaults[name]
    for key, value in (override or {}).items():
        if key not in (*SCENARIOS, "trials"):
            raise ValueError(
                f"unknown scenario key '{key}'; use 'trials', 'deletion' or 'addition'"
            )
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = copy.deepcopy(value)
    return spec
