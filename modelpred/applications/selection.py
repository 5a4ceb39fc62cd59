"""Data selection by Shapley values under label noise (Figure 5).

Some training labels of a dataset are flipped (a label-noise variant such as
``spam-flip10``). Each method ranks the n training points, and the points are
removed from the lowest rank up. After removing r points, the base model is
retrained by its solver on the n − r points that remain and scored by test
accuracy. The methods are

- ModelPred-SV: Shapley values from a trained ModelPred surrogate with many
  permutations (T = 1000 by default),
- Perm-SV: Shapley values from the solver with few permutations (T = 50).
  The workflow reuses the prefixes that the sampling stage has solved
  (:func:`solver_values_from_samples`), so Perm-SV costs what ModelPred's
  sampling costs,
- Random: uniformly random removal orders.

Every curve is scored by the same solver, so the curves compare rankings,
not predicted accuracies. Ties in the values are broken by the point's
index, so the order is deterministic.

Retraining along one removal order
----------------------------------
The set kept after removing the r lowest-ranked points is the set of the
n − r highest-ranked ones. Reversing the order (highest first) therefore
makes every kept set a prefix, so one call of the solver's batched,
warm-started ``fit_prefixes`` on the reversed orders yields every point of
every curve, and the curve at r reads the prefix of length n − r.

Detection of flipped labels
---------------------------
For each method, the number of flipped points among the ⌈fraction · n⌉
lowest-ranked points (fraction = 0.1 by default). Random orders contribute
their mean count, whose expectation is |flipped| · ⌈fraction · n⌉ / n.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..models import BaseModel

logger = logging.getLogger(__name__)

METHODS = ("modelpred", "solver", "random")
"""Removal orders of Figure 5, in legend order."""

METHOD_LABELS = {"modelpred": "ModelPred-SV", "solver": "Perm-SV", "random": "Random"}

RANDOM_STREAM = 0x72616E64
"""Seed word of the random removal orders."""


def removal_order(values: np.ndarray) -> np.ndarray:
    """Return point indices from the lowest value to the highest, ties by index, shape (n,)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError(f"values must be a finite vector of shape (n,), got shape {values.shape}")
    return np.argsort(values, kind="stable")


def random_orders(seed: int, n: int, count: int) -> np.ndarray:
    """Return ``count`` random removal orders of n points, shape (count, n).

    Order r comes from a generator seeded by (seed, :data:`RANDOM_STREAM`, r).
    """
    rows = [
        np.random.default_rng([int(seed), RANDOM_STREAM, r]).permutation(n) for r in range(count)
    ]
    return np.stack(rows).astype(np.int64) if rows else np.zeros((0, n), dtype=np.int64)


def removal_counts(n: int, max_removed: int, step: int) -> np.ndarray:
    """Return the removal counts of a curve: 0, step, 2·step, … up to max_removed, shape (k,)."""
    if not 0 <= max_removed < n or step < 1:
        raise ValueError(
            f"need 0 <= max_removed < n and step >= 1, got max_removed={max_removed}, n={n}, "
            f"step={step}; "
            "at least one point must remain to retrain on"
        )
    counts = np.arange(0, max_removed + 1, step, dtype=np.int64)
    return counts if counts[-1] == max_removed else np.append(counts, max_removed)


def selection_curves(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    orders: np.ndarray,
    removed: Sequence[int],
) -> np.ndarray:
    """Return the test accuracy after removing the first r points of each order and retraining.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm; a kept set lacking a class gets θ = 0.
    X, y : ndarray, shapes (n, d) and (n,)
        The training set, labels as trained on (flipped ones included).
    X_test, y_test : ndarray, shapes (n_test, d) and (n_test,)
    orders : ndarray of int, shape (B, n)
        Removal orders; each row lists all n points, the first removed first.
    removed : sequence of int, length k
        Numbers of removed points, each in 0..n−1.

    Returns
    -------
    ndarray, shape (B, k)
        Test accuracy of the model retrained on the points kept.
    """
    orders = np.atleast_2d(np.asarray(orders, dtype=np.int64))
    removed = np.asarray(removed, dtype=np.int64)
    n = len(y)
    if orders.shape[1] != n or np.any(np.sort(orders, axis=1) != np.arange(n)):
        raise ValueError(
            f"every order must list each of the {n} training points once, got shape {orders.shape}"
        )
    if removed.size and (removed.min() < 0 or removed.max() >= n):
        raise ValueError(
            f"removal counts must lie in 0..{n - 1}, got {removed.min()}..{removed.max()}"
        )
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # Highest-ranked points first, so every kept set is a prefix.
        fits = model.fit_prefixes(X, y, orders[:, ::-1].copy())
        kept_theta = fits.theta[:, n - removed - 1]  # (B, k, p)
        with torch.no_grad():
            accuracy = model.accuracy(
                torch.as_tensor(kept_theta.reshape(-1, model.n_params)),
                torch.as_tensor(X_test, dtype=torch.float64),
                torch.as_tensor(y_test),
            ).numpy()
    finally:
        torch.set_num_threads(previous)
    if not fits.converged.all():
        logger.warning("%d prefix fits missed the solver tolerance", int((~fits.converged).sum()))
    return accuracy.reshape(len(orders), len(removed))


def flipped_in_lowest(order: np.ndarray, flipped: np.ndarray, fraction: float = 0.1) -> int:
    """Return how many flipped points are among the first ⌈fraction · n⌉ of a removal order."""
    order = np.asarray(order)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    lowest = order[: math.ceil(fraction * len(order))]
    return int(np.isin(lowest, np.asarray(flipped)).sum())


def solver_values_from_samples(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    samples: Mapping[str, np.ndarray],
    sample_seed: int,
    T: int,
    utility: str = "neg_loss",
) -> tuple[np.ndarray, int]:
    """Return Perm-SV, the solver's Shapley values from the sampling stage's first T permutations.

    The sampling stage has already solved every prefix of its permutations,
    so Perm-SV reuses those θ and costs what ModelPred's sampling costs. If
    the samples hold fewer than T permutations, the missing ones are drawn
    from the sampling stage's generator (seeded by (sample_seed, t)) and
    solved here.

    Parameters
    ----------
    model : BaseModel
    X, y : ndarray, shapes (n, d) and (n,)
        The training points that the samples' permutations index.
    X_test, y_test : ndarray
    samples : mapping
        From :func:`modelpred.sampling.read_samples`: ``permutations``
        (T_s, n), ``theta`` (T_s, n, p) and ``fixed``.
    sample_seed : int
        The samples' ``seed`` attribute.
    T : int
        Permutations to use.
    utility : {'neg_loss', 'accuracy'}

    Returns
    -------
    values : ndarray, shape (n,)
    solved : int
        Permutations solved here because the samples had too few.
    """
    from ..sampling import draw_permutation
    from .shapley import empty_utility, shapley_from_prefix_utilities, theta_utilities

    n = len(y)
    permutations = np.asarray(samples["permutations"][:T], dtype=np.int64)
    if len(samples.get("fixed", [])) or permutations.shape[1] != n:
        raise ValueError(
            f"the samples permute {permutations.shape[1]} of {n} training points (or fix some), "
            "so their prefixes give no Shapley values of every point; sample the dataset "
            "without subgroup or holdout"
        )
    utilities = theta_utilities(model, samples["theta"][:T], X_test, y_test, utility)
    solved = T - len(permutations)
    if solved > 0:
        logger.info(
            "the samples hold %d permutations; solving %d more for T = %d",
            len(permutations),
            solved,
            T,
        )
        extra = np.stack(
            [draw_permutation(sample_seed, t, np.arange(n)) for t in range(len(permutations), T)]
        )
        fits = model.fit_prefixes(X, y, extra)
        permutations = np.concatenate([permutations, extra])
        utilities = np.concatenate(
            [utilities, theta_utilities(model, fits.theta, X_test, y_test, utility)]
        )
    empty = empty_utility(model, X_test, y_test, utility)
    return shapley_from_prefix_utilities(permutations, utilities, empty), max(solved, 0)


# ---------------------------------------------------------------------------
# Results of one label-noise dataset


@dataclasses.dataclass
class SelectionResult:
    """Figure 5 data for one label-noise dataset.

    Attributes
    ----------
    dataset : str
        The label-noise dataset (``spam-flip10``).
    n_train : int
        Training points n.
    removed : ndarray of int, shape (k,)
        Numbers of removed points.
    values : dict of str to ndarray, shape (n,)
        Shapley values by method (``modelpred``, ``solver``).
    curves : dict of str to ndarray, shape (B, k)
        Test accuracy by method; B = 1 for value-based methods and the
        number of random orders for ``random``.
    flipped : ndarray of int
        Indices of the flipped training points.
    detected : dict of str to float
        Flipped points among the lowest ``lowest_fraction`` of each order
        (the mean over orders for ``random``).
    lowest_fraction : float
    permutations : dict of str to int
        T of each Shapley estimate.
    seconds : dict of str to float
        Wall seconds of each Shapley estimate.
    """

    dataset: str
    n_train: int
    removed: np.ndarray
    values: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]
    flipped: np.ndarray
    detected: dict[str, float]
    lowest_fraction: float
    permutations: dict[str, int]
    seconds: dict[str, float]


def run_selection(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    values: Mapping[str, np.ndarray],
    flipped: np.ndarray,
    removed: Sequence[int],
    random_count: int,
    seed: int,
    lowest_fraction: float = 0.1,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Return the accuracy curves and detection counts of every method.

    Parameters
    ----------
    values : mapping of str to ndarray, shape (n,)
        Shapley values by method.
    flipped : ndarray of int
        Flipped training points.
    removed : sequence of int
        Numbers of removed points.
    random_count : int
        Random removal orders (0 leaves Random out).
    seed : int
        Seeds the random orders.

    Returns
    -------
    curves : dict of str to ndarray, shape (B, k)
    detected : dict of str to float
    """
    orders = {method: removal_order(v)[None] for method, v in values.items()}
    if random_count:
        orders["random"] = random_orders(seed, len(y), random_count)
    stacked = np.concatenate(list(orders.values()))
    accuracy = selection_curves(model, X, y, X_test, y_test, stacked, removed)
    curves, detected, start = {}, {}, 0
    for method, rows in orders.items():
        curves[method] = accuracy[start : start + len(rows)]
        counts = [flipped_in_lowest(order, flipped, lowest_fraction) for order in rows]
        detected[method] = float(np.mean(counts))
        start += len(rows)
    return curves, detected


def write_selection(
    path: str | os.PathLike, result: SelectionResult, attrs: Mapping[str, Any]
) -> None:
    """Write ``selection/{dataset}/{model}.h5`` atomically.

    Layout: ``removed`` (k,), ``flipped`` (f,), ``values/{method}`` (n,),
    ``curves/{method}`` (B, k); root attributes ``dataset``,
    ``n_train``, ``lowest_fraction``, ``methods`` and per method ``detected_{method}``,
    ``permutations_{method}`` and ``seconds_{method}``.
    """
    arrays = {"removed": result.removed, "flipped": np.asarray(result.flipped, dtype=np.int64)}
    arrays.update({f"values/{m}": v for m, v in result.values.items()})
    arrays.update({f"curves/{m}": c for m, c in result.curves.items()})
    root = {
        **attrs,
        "dataset": result.dataset,
        "n_train": int(result.n_train),
        "lowest_fraction": result.lowest_fraction,
        "methods": ",".join(result.curves),
    }
    root.update({f"detected_{m}": v for m, v in result.detected.items()})
    root.update({f"permutations_{m}": v for m, v in result.permutations.items()})
    root.update({f"seconds_{m}": v for m, v in result.seconds.items()})
    io.write_arrays(path, arrays, root)


def read_selection(path: str | os.PathLike) -> SelectionResult:
    """Read a file written by :func:`write_selection`."""
    path = Path(path)
    with io.open_checked(path, ("removed", "flipped", "curves")) as handle:
        attrs = {
            key: value.decode() if isinstance(value, bytes) else value
            for key, value in handle.attrs.items()
        }
        for key in ("dataset", "n_train", "lowest_fraction", "methods"):
            if key not in attrs:
                raise io.FormatError(
                    f"{path}: root attribute '{key}' is missing; rerun the data_selection rule"
                )
        methods = str(attrs["methods"]).split(",")
        missing = [
            m for m in methods if f"curves/{m}" not in handle or f"detected_{m}" not in attrs
        ]
        if missing:
            raise io.FormatError(
                f"{path}: no curves or detection counts for {missing}; "
                "rerun the data_selection rule"
            )
        return SelectionResult(
            dataset=str(attrs["dataset"]),
            n_train=int(attrs["n_train"]),
            removed=handle["removed"][()],
            values={m: handle[f"values/{m}"][()] for m in handle.get("values", {})},
            curves={m: np.atleast_2d(handle[f"curves/{m}"][()]) for m in methods},
            flipped=handle["flipped"][()],
            detected={m: float(attrs[f"detected_{m}"]) for m in methods},
            lowest_fraction=float(attrs["lowest_fraction"]),
            permutations={
                m: int(attrs[f"permutations_{m}"]) for m in methods if f"permutations_{m}" in attrs
            },
            seconds={m: float(attrs[f"seconds_{m}"]) for m in methods if f"seconds_{m}" in attrs},
        )


# ---------------------------------------------------------------------------
# Figure 5 and its detection table

DETECTION_COLUMNS = (
    "panel",
    "dataset",
    "method",
    "n_train",
    "n_flipped",
    "lowest",
    "flipped_in_lowest",
    "expected_by_chance",
    "permutations",
)
"""Columns of ``figures/fig5_data_selection.csv``."""


def detection_rows(panels: Mapping[str, Sequence[SelectionResult]]) -> list[dict[str, Any]]:
    """Return one row per panel, label-noise dataset and method with its detection count."""
    rows = []
    for panel, results in panels.items():
        for result in results:
            n = result.n_train
            lowest = math.ceil(result.lowest_fraction * n)
            for method in METHODS:
                if method not in result.detected:
                    continue
                rows.append(
                    {
                        "panel": panel,
                        "dataset": result.dataset,
                        "method": method,
                        "n_train": n,
                        "n_flipped": len(result.flipped),
                        "lowest": lowest,
                        "flipped_in_lowest": result.detected[method],
                        "expected_by_chance": len(result.flipped) * lowest / n,
                        "permutations": result.permutations.get(method, ""),
                    }
                )
    return rows


def write_detection_csv(
    path: str | os.PathLike, panels: Mapping[str, Sequence[SelectionResult]]
) -> None:
    """Write the detection counts of every panel and method as CSV, atomically."""
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(DETECTION_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(detection_rows(panels))


def figure5(
    panels: Mapping[str, Sequence[SelectionResult]], out_prefix: str | os.PathLike
) -> list[Path]:
    """Draw Figure 5: test accuracy against the number of points removed, one panel per dataset.

    With one label-noise dataset per panel, value-based methods are lines
    and Random is its mean over random orders with a band from the lowest to
    the highest order. With several (one per flip seed), every method shows
    its mean over seeds with a min–max band, and Random pools all orders of
    all seeds.

    Returns
    -------
    list of Path
        The PNG and PDF files.
    """
    from matplotlib.figure import Figure

    from .shapley import save_figure

    if not panels:
        raise ValueError("Figure 5 needs at least one panel of selection results")
    figure = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colors = {"modelpred": "#0072B2", "solver": "#D55E00", "random": "#7F7F7F"}
    for ax, (panel, results) in zip(axes, panels.items(), strict=True):
        removed = results[0].removed
        for result in results[1:]:
            if not np.array_equal(result.removed, removed):
                raise ValueError(
                    f"panel {panel}: {result.dataset} removes {result.removed.tolist()} points but "
                    f"{results[0].dataset} removes {removed.tolist()}; "
                    "use the same selection settings"
                )
        for method in METHODS:
            curves = [result.curves[method] for result in results if method in result.curves]
            if not curves:
                continue
            # Value-based methods have one curve per seed; Random pools its orders over seeds.
            stacked = (
                np.concatenate(curves) if method == "random" else np.stack([c[0] for c in curves])
            )
            label = METHOD_LABELS[method]
            ax.plot(removed, stacked.mean(axis=0), color=colors[method], label=label)
            if len(stacked) > 1:
                ax.fill_between(
                    removed,
                    stacked.min(axis=0),
                    stacked.max(axis=0),
                    color=colors[method],
                    alpha=0.2,
                    linewidth=0,
                )
        seeds = f", {len(results)} flip seeds" if len(results) > 1 else ""
        n_flipped = len(results[0].flipped)
        ax.set_title(f"{panel} ({n_flipped} labels flipped{seeds})")
        ax.set_xlabel("training points removed (lowest value first)")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize="small")
    return save_figure(figure, out_prefix)
