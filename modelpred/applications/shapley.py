"""Permutation-sampling Shapley values of training points (Table V, Figure 4).

Shapley value
-------------
The Shapley value of point i under a utility U on the training set D
(n points) is the average, over uniformly random orderings π of D, of its
marginal contribution

    φᵢ = E_π [ U(P_i^π ∪ {i}) − U(P_i^π) ],

where P_i^π contains the points before i in π. Enumerating subsets gives the
same number (:func:`exact_shapley`):

    φᵢ = Σ_{S ⊆ D∖{i}} |S|! (n − |S| − 1)! / n! · (U(S ∪ {i}) − U(S)).

Permutation estimator
---------------------
Permutation t yields the marginal contributions of all n points from the
utilities of its n + 1 prefixes (the empty set included), so T permutations
need T (n + 1) utilities, and

    φ̂ᵢ(T) = (1/T) Σ_t [U(π_t[:k_t(i)+1]) − U(π_t[:k_t(i)])],

with k_t(i) the position of i in π_t. Its standard error is
SEᵢ(T) = sᵢ / √T, where sᵢ is the sample standard deviation of point i's T
marginal contributions. The contributions along one permutation telescope,
so every estimate satisfies efficiency exactly: Σᵢ φ̂ᵢ = mean_t U_t(D) − U(∅),
where U_t(D) is the estimator's utility of the full set reached by
permutation t (the same value for every t up to round-off).

Estimators differ only in where the prefix utilities come from:

- the solver retrains every prefix with the base model's batched,
  warm-started solver (``fit_prefixes``): the ground truth;
- ModelPred predicts θ of every prefix of a permutation from one cumulative
  sum of DeepSets embeddings, and scores θ̂ on the test set;
- UtlLearn predicts the prefix utility directly (it is trained on the mean
  test loss, so it supports the ``neg_loss`` utility only).

Utility
-------
U(S) is the negative mean test loss of the model trained on S (``neg_loss``,
the default) or its test accuracy (``accuracy``). An empty prefix or one that
lacks a class has θ = 0, as the base models define A(S), so U(∅) is the
utility of θ = 0 for every estimator.

Permutation streams
-------------------
Permutation t of a Shapley run is drawn from a generator seeded by
(seed, stream, t). The valuation stream (:data:`SHAPLEY_STREAM`) differs from
the sampling stage's generator, seeded by (seed, t), so the permutations the
surrogates were trained on are never the ones they are scored on. A run at T
uses permutations 0..T−1, so every estimator uses the same permutations at a
given T and smaller T are prefixes of larger ones. The converged reference
draws from its own stream (:data:`REFERENCE_STREAM`), independent of both.

Converged reference
-------------------
:func:`reference_shapley` runs the solver on its own permutations and adds
``chunk`` permutations at a time. Once at least ``min_permutations`` are
used, it stops at the first check where the relative standard error
‖SE(T)‖₂ / ‖φ̂(T)‖₂ is at most ``tol``, i.e. where the values would move by
about ``tol`` (relative, in L2) if permutations were added without end, or
when ``max_permutations`` is reached (then ``converged`` is False).

Timing
------
Every run records the cumulative wall time of its own work up to each T
(solving or inference, and scoring on the test set). The workflow adds the
one-off cost of a surrogate, i.e. the wall time of its sampling jobs (summed
over shards) and of its training job, read from the Snakemake benchmark files
of those jobs (:func:`read_benchmark_seconds`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import io, metrics
from ..models import BaseModel

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

UTILITIES = ("neg_loss", "accuracy")
"""Utilities a Shapley value can be computed for."""

ESTIMATORS = ("modelpred", "utllearn", "solver")
"""Shapley estimators, in the row order of Table V."""

SHAPLEY_STREAM = 0x73686170
"""Seed word of the valuation permutations, apart from the sampling stage's generator."""

REFERENCE_STREAM = 0x72656633
"""Seed word of the converged reference's permutations."""

PREDICTION_ELEMENTS = 1 << 22
"""Upper bound on prefixes × outputs that one block of surrogate inference holds."""

PrefixUtility = Callable[[np.ndarray], np.ndarray]
"""Maps a block of permutations (b, n) to the utility of every prefix (b, n)."""


# ---------------------------------------------------------------------------
# Utilities and the estimator from prefix utilities


def check_utility(utility: str) -> str:
    """Return ``utility`` if it is one of :data:`UTILITIES`, else raise ValueError."""
    if utility not in UTILITIES:
        raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
    return utility


def theta_utilities(
    model: BaseModel,
    theta: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    utility: str = "neg_loss",
) -> np.ndarray:
    """Return the utility of each θ on the test set.

    Parameters
    ----------
    theta : ndarray, shape (..., p)
    utility : {'neg_loss', 'accuracy'}
        Negative mean test loss, or test accuracy.

    Returns
    -------
    ndarray, shape (...)
    """
    check_utility(utility)
    flat = np.asarray(theta, dtype=np.float64).reshape(-1, model.n_params)
    Xt = torch.as_tensor(X_test, dtype=torch.float64)
    yt = torch.as_tensor(y_test)
    out = np.empty(len(flat))
    with torch.no_grad():
        for start in range(0, len(flat), 4096):
            chunk = torch.as_tensor(flat[start : start + 4096])
            if utility == "neg_loss":
                out[start : start + 4096] = -model.utility(chunk, Xt, yt).numpy()
            else:
                out[start : start + 4096] = model.accuracy(chunk, Xt, yt).numpy()
    return out.reshape(np.shape(theta)[:-1])


def marginal_contributions(
    permutations: np.ndarray, prefix_utilities: np.ndarray, empty_utility: float
) -> np.ndarray:
    """Return every point's marginal contribution in every permutation.

    Parameters
    ----------
    permutations : ndarray of int, shape (T, n)
        Each row orders the indices 0..n-1.
    prefix_utilities : ndarray, shape (T, n)
        ``prefix_utilities[t, i]`` = U of the first i + 1 points of permutation t.
    empty_utility : float
        U(∅).

    Returns
    -------
    ndarray, shape (T, n)
        Entry [t, j] is the contribution of point j (not of position j) in
        permutation t.
    """
    permutations = np.asarray(permutations)
    prefix_utilities = np.asarray(prefix_utilities, dtype=np.float64)
    if permutations.ndim != 2 or prefix_utilities.shape != permutations.shape:
        raise ValueError(
            "permutations and prefix_utilities must both have shape (T, n), "
            f"got {permutations.shape} and {prefix_utilities.shape}"
        )
    T, n = permutations.shape
    previous = np.concatenate(
        [np.full((T, 1), float(empty_utility)), prefix_utilities[:, :-1]], axis=1
    )
    by_position = prefix_utilities - previous
    by_point = np.empty_like(by_position)
    np.put_along_axis(by_point, permutations, by_position, axis=1)
    return by_point


def shapley_from_prefix_utilities(
    permutations: np.ndarray, prefix_utilities: np.ndarray, empty_utility: float
) -> np.ndarray:
    """Average marginal contributions over permutations.

    Parameters
    ----------
    permutations : ndarray of int, shape (T, n)
        Each row orders the indices 0..n-1.
    prefix_utilities : ndarray, shape (T, n)
        ``prefix_utilities[t, i]`` = U of the first i + 1 points of permutation t.
    empty_utility : float
        U(∅).

    Returns
    -------
    ndarray, shape (n,)
        The Shapley value estimate of each point.
    """
    return marginal_contributions(permutations, prefix_utilities, empty_utility).mean(axis=0)


def empty_utility(
    model: BaseModel, X_test: np.ndarray, y_test: np.ndarray, utility: str = "neg_loss"
) -> float:
    """Return U(∅), the utility of θ = 0."""
    return float(theta_utilities(model, np.zeros(model.n_params), X_test, y_test, utility))


def shapley_from_thetas(
    model: BaseModel,
    permutations: np.ndarray,
    prefix_thetas: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    utility: str = "neg_loss",
) -> np.ndarray:
    """Return Shapley values from the θ of every prefix, shape (n,).

    ``prefix_thetas`` (T, n, p) may come from the solver (the samples file)
    or from a surrogate's prefix fast path.
    """
    u = theta_utilities(model, prefix_thetas, X_test, y_test, utility)
    return shapley_from_prefix_utilities(
        permutations, u, empty_utility(model, X_test, y_test, utility)
    )


def exact_shapley(n: int, utility_of: Callable[[tuple[int, ...]], float]) -> np.ndarray:
    """Return exact Shapley values by enumerating all 2ⁿ subsets (small n only).

    φᵢ = Σ_{S ⊆ N∖{i}} |S|! (n − |S| − 1)! / n! · (U(S ∪ {i}) − U(S)).
    ``utility_of`` receives each subset as a sorted tuple of indices.
    """
    if n > 16:
        raise ValueError(
            f"exact enumeration needs 2^n utilities; n = {n} is too large (at most 16)"
        )
    cache = {
        subset: utility_of(subset)
        for size in range(n + 1)
        for subset in itertools.combinations(range(n), size)
    }
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                values[i] += weight * (cache[tuple(sorted((*subset, i)))] - cache[subset])
    return values


def check_valuation_dataset(dataset: io.Dataset) -> None:
    """Raise ValueError if a dataset's permutations do not run over all of its training points.

    The Shapley values here value every training point, so a subgroup
    dataset (fixed points in every subset) or one with held-out points has
    no such values.
    """
    if dataset.subgroup() is not None:
        raise ValueError(
            f"dataset '{dataset.name}' permutes a subgroup over fixed points, which Shapley "
            "values of "
            "all training points do not support; value a dataset without `subgroup`"
        )
    if len(dataset.holdout()):
        raise ValueError(
            f"dataset '{dataset.name}' leaves {len(dataset.holdout())} points out of sampling "
            "(label_noise.holdout), so its surrogate never saw them; set holdout to false "
            "to value them"
        )


# ---------------------------------------------------------------------------
# Permutations


def valuation_permutations(
    seed: int, n: int, count: int, start: int = 0, stream: int = SHAPLEY_STREAM
) -> np.ndarray:
    """Return permutations ``start .. start + count − 1`` of a valuation stream, shape (count, n).

    Permutation t is drawn from a generator seeded by (seed, stream, t), so it
    does not depend on how many permutations are drawn or in which blocks.
    """
    if n < 1 or count < 0 or start < 0:
        raise ValueError(
            f"need n >= 1, count >= 0 and start >= 0, got n={n}, count={count}, start={start}"
        )
    rows = [
        np.random.default_rng([int(seed), int(stream), t]).permutation(n)
        for t in range(start, start + count)
    ]
    return np.stack(rows).astype(np.int64) if rows else np.zeros((0, n), dtype=np.int64)


def permutations_digest(permutations: np.ndarray) -> str:
    """Return the sha256 of permutations as int64, to check that two files used the same ones."""
    return hashlib.sha256(np.ascontiguousarray(permutations, dtype=np.int64).tobytes()).hexdigest()


# ---------------------------------------------------------------------------
# Prefix utilities of each estimator


def solver_prefix_utility(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    utility: str = "neg_loss",
) -> PrefixUtility:
    """Return a function that retrains every prefix of a block of permutations and scores it.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A; one-class prefixes get θ = 0.
    X, y : ndarray, shapes (n, d) and (n,)
        The training points that permutations index.
    X_test, y_test : ndarray, shapes (n_test, d) and (n_test,)
    utility : {'neg_loss', 'accuracy'}

    Returns
    -------
    callable
        Maps permutations (b, n) to prefix utilities (b, n).
    """
    check_utility(utility)

    def prefix_utilities(permutations: np.ndarray) -> np.ndarray:
        fits = model.fit_prefixes(X, y, permutations)
        if not fits.converged.all():
            logger.warning(
                "%d of %d prefix fits missed the solver tolerance (largest KKT residual %.3g)",
                int((~fits.converged).sum()),
                fits.converged.size,
                float(fits.kkt_residual.max()),
            )
        return theta_utilities(model, fits.theta, X_test, y_test, utility)

    return prefix_utilities


def surrogate_prefix_utility(
    surrogate,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    utility: str = "neg_loss",
) -> PrefixUtility:
    """Return a function that predicts the utility of every prefix with a trained surrogate.

    A θ surrogate (``modelpred``, ``paralearn``) predicts θ̂ of every prefix
    from one cumulative sum of embeddings and scores it on the test set. A
    ``utllearn`` surrogate predicts the mean test loss directly, so its
    utility is the negated prediction.

    Parameters
    ----------
    surrogate : modelpred.surrogate.Surrogate
    X, y : ndarray, shapes (n, d) and (n,)
        The training points that permutations index.
    X_test, y_test : ndarray
        The test set; a ``utllearn`` surrogate must have been trained on it.
    utility : {'neg_loss', 'accuracy'}

    Raises
    ------
    ValueError
        If a ``utllearn`` surrogate is asked for the accuracy utility.
    """
    check_utility(utility)
    if surrogate.predicts_utility:
        if utility != "neg_loss":
            raise ValueError(
                f"a '{surrogate.method}' surrogate predicts the mean test loss, so it cannot "
                "give the "
                f"'{utility}' utility; use utility 'neg_loss' or leave this surrogate out"
            )
        surrogate.check_test_set(X_test, y_test)

        def predicted_utilities(permutations: np.ndarray) -> np.ndarray:
            return -surrogate.predict_prefixes(X, y, permutations)

        return predicted_utilities

    def scored_utilities(permutations: np.ndarray) -> np.ndarray:
        theta = surrogate.predict_prefixes(X, y, permutations)
        return theta_utilities(surrogate.model, theta, X_test, y_test, utility)

    return scored_utilities


def surrogate_block(surrogate, n: int) -> int:
    """Return how many permutations of n points one block of surrogate inference takes.

    The block bounds the prefixes × max(outputs, hidden units) held at once
    by :data:`PREDICTION_ELEMENTS`, which keeps memory in the hundreds of MB.
    """
    width = max(
        int(surrogate.network.n_outputs),
        int(surrogate.metadata.get("config", {}).get("hidden", 128)),
    )
    return max(1, PREDICTION_ELEMENTS // max(1, n * width))


def default_solver_block(model: BaseModel) -> int:
    """Return the permutations solved together by default.

    Batching amortises the per-iteration overhead of the batched Newton
    solver. Multinomial models use conjugate gradients on K(d+1) parameters
    per subset, whose memory grows with the batch, so they take fewer.
    """
    return 50 if model.n_rows == 1 else 10


# ---------------------------------------------------------------------------
# The estimator over blocks of permutations


@dataclasses.dataclass
class ShapleyRun:
    """Permutation-sampling Shapley estimates at several permutation counts.

    Attributes
    ----------
    checkpoints : ndarray of int, shape (k,)
        Permutation counts T, increasing; the estimate at T uses permutations 0..T−1.
    values : ndarray, shape (k, n)
        φ̂(T) of every point at every checkpoint.
    standard_error : ndarray, shape (k, n)
        sᵢ / √T (NaN at T = 1).
    seconds : ndarray, shape (k,)
        Cumulative wall seconds of the run's own work up to each checkpoint.
    full_utility : ndarray, shape (k,)
        Mean over permutations 0..T−1 of the utility of the full set.
    empty_utility : float
        U(∅), the utility of θ = 0.
    """

    checkpoints: np.ndarray
    values: np.ndarray
    standard_error: np.ndarray
    seconds: np.ndarray
    full_utility: np.ndarray
    empty_utility: float

    def at(self, T: int) -> np.ndarray:
        """Return φ̂(T), shape (n,)."""
        matches = np.nonzero(self.checkpoints == int(T))[0]
        if len(matches) == 0:
            raise KeyError(f"no estimate at T = {T}; this run has T = {self.checkpoints.tolist()}")
        return self.values[matches[0]]


class _MarginalSums:
    """Running sums of marginal contributions, for means and standard errors."""

    def __init__(self, n: int):
        self.count = 0
        self.total = np.zeros(n)
        self.squares = np.zeros(n)
        self.full = 0.0

    def add(self, contributions: np.ndarray, full_utilities: np.ndarray) -> None:
        self.count += len(contributions)
        self.total += contributions.sum(axis=0)
        self.squares += (contributions**2).sum(axis=0)
        self.full += float(full_utilities.sum())

    def mean(self) -> np.ndarray:
        return self.total / self.count

    def standard_error(self) -> np.ndarray:
        if self.count < 2:
            return np.full_like(self.total, np.nan)
        variance = (self.squares - self.total**2 / self.count) / (self.count - 1)
        # Round-off can make a zero variance slightly negative.
        return np.sqrt(np.maximum(variance, 0.0) / self.count)


def _blocks(start: int, stop: int, block: int, boundaries: Sequence[int]) -> list[tuple[int, int]]:
    """Split [start, stop) into pieces of at most ``block`` that never cross a boundary."""
    cuts = sorted({start, stop, *(b for b in boundaries if start < b < stop)})
    pieces = []
    for low, high in itertools.pairwise(cuts):
        pieces.extend((s, min(s + block, high)) for s in range(low, high, block))
    return pieces


def _check_checkpoints(checkpoints: Sequence[int]) -> np.ndarray:
    checkpoints = np.asarray(sorted({int(T) for T in checkpoints}), dtype=np.int64)
    if len(checkpoints) == 0 or checkpoints[0] < 1:
        raise ValueError(f"permutation counts must be positive integers, got {list(checkpoints)}")
    return checkpoints


def permutation_shapley(
    prefix_utility: PrefixUtility,
    permutations: np.ndarray,
    checkpoints: Sequence[int],
    empty_utility: float,
    block: int,
    progress: Callable[[int], None] | None = None,
) -> ShapleyRun:
    """Estimate Shapley values from permutations 0..T−1 for every T in ``checkpoints``.

    Parameters
    ----------
    prefix_utility : callable
        Maps a block of permutations (b, n) to prefix utilities (b, n); see
        :func:`solver_prefix_utility` and :func:`surrogate_prefix_utility`.
    permutations : ndarray of int, shape (T_max, n)
        At least max(checkpoints) rows.
    checkpoints : sequence of int
        Permutation counts T at which the estimate is recorded.
    empty_utility : float
        U(∅).
    block : int
        Permutations handed to ``prefix_utility`` at once; blocks end at
        every checkpoint so that the time at T counts only permutations 0..T−1.
    progress : callable, optional
        Called with the number of permutations done after each block.

    Returns
    -------
    ShapleyRun
    """
    checkpoints = _check_checkpoints(checkpoints)
    permutations = np.asarray(permutations, dtype=np.int64)
    if permutations.ndim != 2 or len(permutations) < checkpoints[-1]:
        raise ValueError(
            f"need at least {checkpoints[-1]} permutations (the largest T), "
            f"got shape {permutations.shape}"
        )
    if block < 1:
        raise ValueError(f"block must be a positive integer, got {block}")
    n = permutations.shape[1]
    sums = _MarginalSums(n)
    values, errors, seconds, full = [], [], [], []
    elapsed = 0.0
    for low, high in _blocks(0, int(checkpoints[-1]), int(block), checkpoints.tolist()):
        started = time.perf_counter()
        perms = permutations[low:high]
        utilities = np.asarray(prefix_utility(perms), dtype=np.float64)
        sums.add(marginal_contributions(perms, utilities, empty_utility), utilities[:, -1])
        elapsed += time.perf_counter() - started
        if progress is not None:
            progress(high)
        if high in checkpoints:
            values.append(sums.mean())
            errors.append(sums.standard_error())
            seconds.append(elapsed)
            full.append(sums.full / sums.count)
    return ShapleyRun(
        checkpoints=checkpoints,
        values=np.stack(values),
        standard_error=np.stack(errors),
        seconds=np.asarray(seconds),
        full_utility=np.asarray(full),
        empty_utility=float(empty_utility),
    )


def solver_shapley(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    permutations: np.ndarray,
    checkpoints: Sequence[int],
    utility: str = "neg_loss",
    block: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ShapleyRun:
    """Estimate Shapley values by retraining every prefix with the base model's solver.

    Parameters are those of :func:`permutation_shapley` and
    :func:`solver_prefix_utility`; ``block`` defaults to
    :func:`default_solver_block`. Torch runs on one thread meanwhile, so the
    values and times do not depend on the machine's core count.
    """
    block = default_solver_block(model) if block is None else int(block)
    with _one_torch_thread():
        return permutation_shapley(
            solver_prefix_utility(model, X, y, X_test, y_test, utility),
            permutations,
            checkpoints,
            empty_utility(model, X_test, y_test, utility),
            block,
            progress,
        )


def surrogate_shapley(
    surrogate,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    permutations: np.ndarray,
    checkpoints: Sequence[int],
    utility: str = "neg_loss",
    block: int | None = None,
) -> ShapleyRun:
    """Estimate Shapley values from a trained surrogate's predictions for whole permutations.

    ``block`` defaults to :func:`surrogate_block`. U(∅) is the utility of
    θ = 0 on the test set, as for the solver.
    """
    block = surrogate_block(surrogate, permutations.shape[1]) if block is None else int(block)
    with _one_torch_thread():
        return permutation_shapley(
            surrogate_prefix_utility(surrogate, X, y, X_test, y_test, utility),
            permutations,
            checkpoints,
            empty_utility(surrogate.model, X_test, y_test, utility),
            block,
        )


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the body with one torch CPU thread, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------
# Converged reference


@dataclasses.dataclass
class ReferenceShapley:
    """Solver Shapley values with permutations added until their standard error is small.

    Attributes
    ----------
    values, standard_error : ndarray, shape (n,)
        φ̂ and its standard error at the final permutation count.
    n_permutations : int
        Permutations used.
    converged : bool
        Whether the relative standard error fell to ``tol`` before ``max_permutations``.
    checked_at : ndarray of int, shape (c,)
        Permutation counts at which the stopping rule was checked.
    relative_standard_error : ndarray, shape (c,)
        ‖SE(T)‖₂ / ‖φ̂(T)‖₂ at each check: the stopping statistic.
    relative_change : ndarray, shape (c,)
        ‖φ̂(T) − φ̂(T − chunk)‖₂ / ‖φ̂(T)‖₂ at each check, for information.
    seconds : float
        Wall seconds of the whole run.
    tol, chunk, min_permutations, max_permutations
        The stopping rule's settings.
    """

    values: np.ndarray
    standard_error: np.ndarray
    n_permutations: int
    converged: bool
    checked_at: np.ndarray
    relative_standard_error: np.ndarray
    relative_change: np.ndarray
    seconds: float
    tol: float
    chunk: int
    min_permutations: int
    max_permutations: int


def reference_shapley(
    prefix_utility: PrefixUtility,
    n: int,
    seed: int,
    empty_utility: float,
    *,
    max_permutations: int = 4000,
    min_permutations: int = 1000,
    chunk: int = 100,
    tol: float = 0.05,
    block: int = 50,
    stream: int = REFERENCE_STREAM,
    progress: Callable[[int], None] | None = None,
) -> ReferenceShapley:
    """Add permutations ``chunk`` at a time until the relative standard error is at most ``tol``.

    The stopping statistic is ‖SE(T)‖₂ / ‖φ̂(T)‖₂, with SEᵢ(T) = sᵢ / √T:
    the typical distance, relative to the values, that the estimate would
    still move if permutations were added without end. It is checked after
    every chunk once at least ``min_permutations`` permutations are in, and
    the run stops at the first check that meets ``tol`` or at
    ``max_permutations`` (then ``converged`` is False). Permutations come
    from ``stream``, independent of the valuation stream that the
    estimators are compared on.

    Parameters
    ----------
    prefix_utility : callable
        Usually :func:`solver_prefix_utility`.
    n : int
        Points to value.
    seed : int
    empty_utility : float
        U(∅).
    max_permutations, min_permutations, chunk : int
    tol : float
        Largest accepted relative standard error (0.05 = 5%).
    block : int
        Permutations handed to ``prefix_utility`` at once.
    stream : int
        Seed word of the permutations.
    progress : callable, optional
        Called with the number of permutations done after each chunk.

    Returns
    -------
    ReferenceShapley
    """
    if chunk < 1 or max_permutations < 1 or min_permutations < 0 or not tol > 0 or block < 1:
        raise ValueError(
            "reference settings need chunk >= 1, max_permutations >= 1, min_permutations >= 0, "
            f"tol > 0 and block >= 1, got chunk={chunk}, max_permutations={max_permutations}, "
            f"min_permutations={min_permutations}, tol={tol}, block={block}"
        )
    started = time.perf_counter()
    sums = _MarginalSums(n)
    previous = None
    checked_at, errors, changes = [], [], []
    converged = False
    while sums.count < max_permutations and not converged:
        count = min(chunk, max_permutations - sums.count)
        perms = valuation_permutations(seed, n, count, start=sums.count, stream=stream)
        for low in range(0, count, block):
            part = perms[low : low + block]
            utilities = np.asarray(prefix_utility(part), dtype=np.float64)
            sums.add(marginal_contributions(part, utilities, empty_utility), utilities[:, -1])
        current = sums.mean()
        if sums.count >= max(min_permutations, 2):
            scale = max(float(np.linalg.norm(current)), np.finfo(float).tiny)
            error = float(np.linalg.norm(sums.standard_error())) / scale
            change = (
                math.nan if previous is None else float(np.linalg.norm(current - previous)) / scale
            )
            checked_at.append(sums.count)
            errors.append(error)
            changes.append(change)
            converged = error <= tol
            logger.info(
                "reference at T = %d: relative standard error %.4f (tolerance %.4f), "
                "relative change %.4f",
                sums.count,
                error,
                tol,
                change,
            )
        previous = current
        if progress is not None:
            progress(sums.count)
    if not converged:
        logger.warning(
            "reference stopped at max_permutations = %d with relative standard error %.4f, "
            "above the tolerance %.4f",
            max_permutations,
            errors[-1] if errors else math.nan,
            tol,
        )
    return ReferenceShapley(
        values=sums.mean(),
        standard_error=sums.standard_error(),
        n_permutations=sums.count,
        converged=converged,
        checked_at=np.asarray(checked_at, dtype=np.int64),
        relative_standard_error=np.asarray(errors, dtype=np.float64),
        relative_change=np.asarray(changes, dtype=np.float64),
        seconds=time.perf_counter() - started,
        tol=float(tol),
        chunk=int(chunk),
        min_permutations=int(min_permutations),
        max_permutations=int(max_permutations),
    )


# ---------------------------------------------------------------------------
# Comparison and timing


def compare_values(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Return NRMSE (RMSE / range of ``truth``) and Spearman's ρ of Shapley values.

    Both follow :mod:`modelpred.metrics`; either is NaN where undefined.
    """
    return {"nrmse": metrics.nrmse(estimate, truth), "spearman": metrics.spearman(estimate, truth)}


def read_benchmark_seconds(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> float:
    """Return the summed wall seconds (column ``s``) of Snakemake benchmark files.

    A file with several rows (``repeat`` benchmarks) counts the mean of its
    rows. Sampling shards are summed, which is their wall time had they run
    one after another.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    total = 0.0
    for path in paths:
        lines = Path(path).read_text().splitlines()
        if len(lines) < 2:
            raise io.FormatError(
                f"{path}: expected a Snakemake benchmark file with a header and one row; "
                "rerun its rule"
            )
        header = lines[0].split("\t")
        if "s" not in header:
            raise io.FormatError(
                f"{path}: no column 's' in header {header}; pass a Snakemake benchmark file"
            )
        column = header.index("s")
        rows = [float(line.split("\t")[column]) for line in lines[1:] if line.strip()]
        total += float(np.mean(rows))
    return total


# ---------------------------------------------------------------------------
# Files


def _run_arrays(run: ShapleyRun, prefix: str) -> dict[str, np.ndarray]:
    return {
        f"{prefix}T": run.checkpoints,
        f"{prefix}values": run.values,
        f"{prefix}standard_error": run.standard_error,
        f"{prefix}compute_seconds": run.seconds,
        f"{prefix}full_utility": run.full_utility,
        f"{prefix}empty_utility": np.float64(run.empty_utility),
    }


def _root_attrs(handle) -> dict[str, Any]:
    return {
        key: value.decode() if isinstance(value, bytes) else value
        for key, value in handle.attrs.items()
    }


def _run_from_handle(
    handle, prefix: str, path: Path, checkpoints: np.ndarray | None = None
) -> ShapleyRun:
    names = ("values", "standard_error", "compute_seconds", "full_utility", "empty_utility")
    if checkpoints is None:
        names = ("T", *names)
    for name in names:
        if f"{prefix}{name}" not in handle:
            raise io.FormatError(
                f"{path}: missing '{prefix}{name}'; delete it and rerun the rule that writes it"
            )
    if checkpoints is None:
        checkpoints = handle[f"{prefix}T"][()]
    return ShapleyRun(
        checkpoints=np.asarray(checkpoints, dtype=np.int64),
        values=handle[f"{prefix}values"][()],
        standard_error=handle[f"{prefix}standard_error"][()],
        seconds=handle[f"{prefix}compute_seconds"][()],
        full_utility=handle[f"{prefix}full_utility"][()],
        empty_utility=float(handle[f"{prefix}empty_utility"][()]),
    )


def write_run(path: str | os.PathLike, run: ShapleyRun, attrs: Mapping[str, Any]) -> None:
    """Write one estimator's run (e.g. ``shapley/{dataset}/{model}/solver.h5``) atomically."""
    io.write_arrays(path, _run_arrays(run, ""), attrs)


def read_run(path: str | os.PathLike) -> tuple[ShapleyRun, dict[str, Any]]:
    """Read a file written by :func:`write_run`; returns the run and the root attributes."""
    path = Path(path)
    with io.open_checked(path) as handle:
        run = _run_from_handle(handle, "", path)
        attrs = _root_attrs(handle)
    return run, attrs


_REFERENCE_ARRAYS = (
    "values",
    "standard_error",
    "checked_at",
    "relative_standard_error",
    "relative_change",
)
_REFERENCE_SCALARS = (
    "n_permutations",
    "converged",
    "seconds",
    "tol",
    "chunk",
    "min_permutations",
    "max_permutations",
)


def _reference_arrays(reference: ReferenceShapley, prefix: str) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}{name}": np.asarray(getattr(reference, name)) for name in _REFERENCE_ARRAYS}
    arrays.update(
        {f"{prefix}{name}": np.asarray(getattr(reference, name)) for name in _REFERENCE_SCALARS}
    )
    return arrays


def _reference_from_handle(handle, prefix: str, path: Path) -> ReferenceShapley:
    fields = {}
    for name in (*_REFERENCE_ARRAYS, *_REFERENCE_SCALARS):
        if f"{prefix}{name}" not in handle:
            raise io.FormatError(
                f"{path}: missing '{prefix}{name}'; delete it and rerun the rule that writes it"
            )
        fields[name] = handle[f"{prefix}{name}"][()]
    for name, kind in (
        ("n_permutations", int),
        ("converged", bool),
        ("seconds", float),
        ("tol", float),
    ):
        fields[name] = kind(fields[name])
    for name in ("chunk", "min_permutations", "max_permutations"):
        fields[name] = int(fields[name])
    return ReferenceShapley(**fields)


def write_reference(
    path: str | os.PathLike, reference: ReferenceShapley, attrs: Mapping[str, Any]
) -> None:
    """Write a converged reference (``shapley/{dataset}/{model}/reference.h5``) atomically."""
    io.write_arrays(path, _reference_arrays(reference, ""), attrs)


def read_reference(path: str | os.PathLike) -> tuple[ReferenceShapley, dict[str, Any]]:
    """Read a file written by :func:`write_reference`; returns the reference and the root attrs."""
    path = Path(path)
    with io.open_checked(path) as handle:
        reference = _reference_from_handle(handle, "", path)
        attrs = _root_attrs(handle)
    return reference, attrs


@dataclasses.dataclass
class EstimatorResult:
    """One estimator's Shapley values with its total time.

    Attributes
    ----------
    run : ShapleyRun
        Values and the estimator's own cumulative time at every T.
    sampling_seconds, training_seconds : float
        One-off cost of a surrogate (0 for the solver).
    """

    run: ShapleyRun
    sampling_seconds: float = 0.0
    training_seconds: float = 0.0

    @property
    def total_seconds(self) -> np.ndarray:
        """Total wall seconds at every T: sampling + training + the run's own work, shape (k,)."""
        return self.sampling_seconds + self.training_seconds + self.run.seconds


@dataclasses.dataclass
class ShapleyResults:
    """The contents of ``shapley/{dataset}/{model}.h5``.

    Attributes
    ----------
    dataset, model, utility : str
    estimators : dict of str to EstimatorResult
        By estimator name (``solver``, ``modelpred``, ``utllearn``); every
        run has the same checkpoints and used the same permutations.
    reference : ReferenceShapley or None
        The converged solver reference, if one was computed.
    attrs : dict
        Other root attributes (seed, provenance).
    """

    dataset: str
    model: str
    utility: str
    estimators: dict[str, EstimatorResult]
    reference: ReferenceShapley | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def checkpoints(self) -> np.ndarray:
        return next(iter(self.estimators.values())).run.checkpoints


def write_results(path: str | os.PathLike, results: ShapleyResults) -> None:
    """Write ``shapley/{dataset}/{model}.h5`` atomically.

    Layout: ``T`` (k,); for each estimator a group ``estimators/{name}`` with
    ``values`` (k, n), ``standard_error`` (k, n), ``seconds`` (k, total wall
    time), ``compute_seconds`` (k, its own work), ``sampling_seconds`` and
    ``training_seconds`` (scalars), ``full_utility`` (k) and
    ``empty_utility``; and, if computed, a group ``reference`` with the
    fields of :class:`ReferenceShapley`.
    """
    runs = [result.run for result in results.estimators.values()]
    if not runs:
        raise ValueError("no estimator results to write")
    for name, result in results.estimators.items():
        if not np.array_equal(result.run.checkpoints, runs[0].checkpoints):
            raise ValueError(
                f"estimator '{name}' has T = {result.run.checkpoints.tolist()} but the first has "
                f"{runs[0].checkpoints.tolist()}; compute every estimator at the same T"
            )
    arrays: dict[str, np.ndarray] = {"T": runs[0].checkpoints}
    for name, result in results.estimators.items():
        prefix = f"estimators/{name}/"
        arrays.update(_run_arrays(result.run, prefix))
        del arrays[f"{prefix}T"]
        arrays[f"{prefix}seconds"] = result.total_seconds
        arrays[f"{prefix}sampling_seconds"] = np.float64(result.sampling_seconds)
        arrays[f"{prefix}training_seconds"] = np.float64(result.training_seconds)
    if results.reference is not None:
        arrays.update(_reference_arrays(results.reference, "reference/"))
    attrs = {
        **results.attrs,
        "dataset": results.dataset,
        "base_model": results.model,
        "utility": results.utility,
        "estimators": ",".join(results.estimators),
    }
    io.write_arrays(path, arrays, attrs)


def read_results(path: str | os.PathLike) -> ShapleyResults:
    """Read ``shapley/{dataset}/{model}.h5`` written by :func:`write_results`."""
    path = Path(path)
    with io.open_checked(path, ("T", "estimators")) as handle:
        attrs = _root_attrs(handle)
        for key in ("dataset", "base_model", "utility", "estimators"):
            if key not in attrs:
                raise io.FormatError(
                    f"{path}: root attribute '{key}' is missing; rerun the shapley rule"
                )
        T = handle["T"][()]
        estimators = {}
        for name in str(attrs["estimators"]).split(","):
            prefix = f"estimators/{name}/"
            for member in ("sampling_seconds", "training_seconds"):
                if f"{prefix}{member}" not in handle:
                    raise io.FormatError(
                        f"{path}: missing '{prefix}{member}'; delete it and rerun the shapley rule"
                    )
            run = _run_from_handle(handle, prefix, path, T)
            estimators[name] = EstimatorResult(
                run,
                sampling_seconds=float(handle[f"{prefix}sampling_seconds"][()]),
                training_seconds=float(handle[f"{prefix}training_seconds"][()]),
            )
        reference = (
            _reference_from_handle(handle, "reference/", path) if "reference" in handle else None
        )
    return ShapleyResults(
        dataset=str(attrs.pop("dataset")),
        model=str(attrs.pop("base_model")),
        utility=str(attrs.pop("utility")),
        estimators=estimators,
        reference=reference,
        attrs=attrs,
    )


# ---------------------------------------------------------------------------
# Table V and Figure 4

TABLE5_NAME = "table5_shapley"
"""Report target of Table V."""

TABLE5_PAPER_DATASETS = ("iris", "spam", "higgs", "magic", "mnist")
"""Datasets of Table V in row order; MAGIC runs offline in place of HIGGS."""

TABLE5_COLUMNS = (
    "dataset",
    "model",
    "utility",
    "method",
    "T",
    "nrmse",
    "spearman",
    "seconds",
    "nrmse_paper",
    "spearman_paper",
    "seconds_paper",
    "nrmse_reference",
    "spearman_reference",
    "reference_permutations",
    "reference_converged",
    "sampling_seconds",
    "training_seconds",
    "compute_seconds",
)
"""Columns of Table V's CSV file (NRMSE as a fraction, not in %)."""

METHOD_LABELS = {"modelpred": "ModelPred", "utllearn": "UtlLearn", "solver": "Solver"}
DATASET_LABELS = {
    "iris": "Iris",
    "spam": "SPAM",
    "higgs": "HIGGS",
    "magic": "MAGIC",
    "mnist": "MNIST",
}
STAND_INS = {"magic": "higgs"}
"""Datasets that run offline in place of a paper dataset; they get no paper values."""


def table5_frame(results: Sequence[ShapleyResults], paper_values=None) -> pd.DataFrame:
    """Return Table V in long form: one row per dataset, estimator and T.

    Parameters
    ----------
    results : sequence of ShapleyResults
        One per dataset, from :func:`read_results`.
    paper_values : pandas.DataFrame, optional
        The paper's numbers (``modelpred.reporting.load_paper_values()``);
        their columns ``*_paper`` stay empty without it.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`TABLE5_COLUMNS`. ``nrmse`` and ``spearman``
        compare with the solver at the same T (empty for the solver itself),
        ``*_reference`` with the converged reference, and ``seconds`` is the
        total wall time (sampling and training included for surrogates).
    """
    import pandas as pd

    rows = []
    for result in results:
        solver = result.estimators.get("solver")
        reference = result.reference
        for method in sorted(result.estimators, key=_method_order):
            estimator = result.estimators[method]
            for index, T in enumerate(estimator.run.checkpoints.tolist()):
                values = estimator.run.values[index]
                row: dict[str, Any] = {
                    "dataset": result.dataset,
                    "model": result.model,
                    "utility": result.utility,
                    "method": method,
                    "T": int(T),
                    "seconds": float(estimator.total_seconds[index]),
                    "sampling_seconds": estimator.sampling_seconds,
                    "training_seconds": estimator.training_seconds,
                    "compute_seconds": float(estimator.run.seconds[index]),
                }
                if solver is not None and method != "solver":
                    versus_solver = compare_values(values, solver.run.values[index])
                    row["nrmse"], row["spearman"] = (
                        versus_solver["nrmse"],
                        versus_solver["spearman"],
                    )
                if reference is not None:
                    versus_reference = compare_values(values, reference.values)
                    row["nrmse_reference"] = versus_reference["nrmse"]
                    row["spearman_reference"] = versus_reference["spearman"]
                    row["reference_permutations"] = reference.n_permutations
                    row["reference_converged"] = reference.converged
                if paper_values is not None and result.dataset not in STAND_INS:
                    for metric in ("nrmse", "spearman", "seconds"):
                        row[f"{metric}_paper"] = _paper_number(
                            paper_values, result.dataset, result.model, method, metric, int(T)
                        )
                rows.append(row)
    return pd.DataFrame(rows, columns=list(TABLE5_COLUMNS))


def _method_order(method: str) -> tuple[int, str]:
    return (ESTIMATORS.index(method), "") if method in ESTIMATORS else (len(ESTIMATORS), method)


def _paper_number(
    paper_values, dataset: str, model: str, method: str, metric: str, T: int
) -> float | None:
    frame = paper_values
    selected = frame[
        (frame["table"] == TABLE5_NAME)
        & (frame["dataset"] == dataset)
        & (frame["model"] == model)
        & (frame["method"] == method)
        & (frame["metric"] == metric)
        & (frame["T"] == T).fillna(False).astype(bool)
    ]
    return float(selected["value"].iloc[0]) if len(selected) else None


def _csv_value(column: str, value: Any) -> str:
    if _is_missing(value):
        return ""
    if column in ("T", "reference_permutations"):
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.number)):
        # repr gives the shortest text that reads back as the same float.
        return repr(float(value))
    return str(value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _format_metric(metric: str, value: Any) -> str:
    if _is_missing(value):
        return "–" if metric != "spearman" else "n/a"
    if metric == "nrmse":
        return f"{100 * float(value):.2f}%"
    if metric == "spearman":
        return f"{float(value):.4f}"
    return f"{float(value):.3g}"


def _table5_cell(row: Mapping[str, Any], metric: str) -> str:
    if row["method"] == "solver" and metric in ("nrmse", "spearman"):
        return "–"
    ours = _format_metric(metric, row[metric])
    paper = row.get(f"{metric}_paper")
    return ours if _is_missing(paper) else f"{ours} ({_format_metric(metric, paper)})"


def _reference_cells(row: Mapping[str, Any]) -> list[str]:
    if _is_missing(row["reference_permutations"]):
        return ["–", "–"]
    return [
        _format_metric("nrmse", row["nrmse_reference"]),
        _format_metric("spearman", row["spearman_reference"]),
    ]


def _table5_order(frame) -> list[str]:
    present = list(dict.fromkeys(frame["dataset"]))
    ordered = [d for d in TABLE5_PAPER_DATASETS if d in present]
    return ordered + [d for d in present if d not in ordered]


def _table5_notes(frame, left_out: Sequence[str], deviations_link: str) -> list[str]:
    utilities = {"neg_loss": "the negative mean test loss", "accuracy": "the test accuracy"}
    used = ", ".join(utilities.get(u, u) for u in frame["utility"].unique())
    notes = [
        f"The utility of a training subset is {used} of the model trained on it.",
        "NRMSE and Spearman's ρ compare each estimator's Shapley values with the solver's at "
        "the same T and on the same permutations. A paper value follows in parentheses where "
        "the paper reports one.",
        "Seconds are total wall times. For ModelPred and UtlLearn they add the wall time of "
        "the sampling jobs (summed over shards) and of the surrogate's training job, from the "
        "workflow's benchmark files, to the inference time at T. For the solver they are the "
        "time of retraining every prefix with the batched, warm-started solver.",
        f"Every departure from the paper is listed in {deviations_link}.",
    ]
    references = frame.dropna(subset=["reference_permutations"]).drop_duplicates("dataset")
    for _, row in references.iterrows():
        state = (
            "converged"
            if bool(row["reference_converged"])
            else "stopped at its cap before converging"
        )
        notes.append(
            f"{DATASET_LABELS.get(row['dataset'], row['dataset'])}: the reference is the solver "
            "with "
            f"{int(row['reference_permutations'])} permutations of an independent stream ({state})."
        )
    for dataset in frame["dataset"].unique():
        if dataset not in set(references["dataset"]):
            notes.append(
                f"{DATASET_LABELS.get(dataset, dataset)}: no converged reference was computed."
            )
    for stand_in, replaced in STAND_INS.items():
        if stand_in in set(frame["dataset"]):
            notes.append(
                f"{DATASET_LABELS[stand_in]} stands in for {DATASET_LABELS[replaced]}, which "
                "needs a local file. It is a different dataset, so its rows have no paper values."
            )
    for dataset in left_out:
        notes.append(
            f"{DATASET_LABELS.get(dataset, dataset)} is not enabled in this run, so its rows "
            "are left out."
        )
    return notes


def write_table5(
    frame,
    out_prefix: str | os.PathLike,
    *,
    left_out: Sequence[str] = (),
    deviations_page: str | os.PathLike = "docs/deviations.md",
) -> list[Path]:
    """Write Table V as ``{out_prefix}.csv``, ``.md`` and ``.tex``.

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`table5_frame`.
    out_prefix : path-like
        Output path without suffix.
    left_out : sequence of str
        Table V datasets that did not run; each gets a note.
    deviations_page : path-like
        The page of departures from the paper, linked relative to the output folder.

    Returns
    -------
    list of Path
        The CSV, Markdown and LaTeX files.
    """
    prefix = Path(out_prefix)
    paths = [prefix.with_name(prefix.name + suffix) for suffix in (".csv", ".md", ".tex")]
    relative = os.path.relpath(Path(deviations_page).resolve(), prefix.parent.resolve())
    link = f"[{Path(deviations_page).as_posix()}]({Path(relative).as_posix()})"
    notes = _table5_notes(frame, left_out, link)
    header = [
        "Dataset",
        "Method",
        "T",
        "NRMSE",
        "Spearman",
        "Seconds",
        "NRMSE vs reference",
        "Spearman vs reference",
    ]
    rows, group_starts = [], []
    for dataset in _table5_order(frame):
        group_starts.append(len(rows))
        part = frame[frame["dataset"] == dataset]
        for method in sorted(part["method"].unique(), key=_method_order):
            for _, row in part[part["method"] == method].sort_values("T").iterrows():
                rows.append(
                    [
                        DATASET_LABELS.get(dataset, dataset),
                        METHOD_LABELS.get(method, method),
                        str(int(row["T"])),
                        _table5_cell(row, "nrmse"),
                        _table5_cell(row, "spearman"),
                        _table5_cell(row, "seconds"),
                        *_reference_cells(row),
                    ]
                )
    title = "Table V. Shapley values by permutation sampling: estimators against the solver (LR)"

    with io.atomic_path(paths[0]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TABLE5_COLUMNS)
        for record in frame[list(TABLE5_COLUMNS)].itertuples(index=False):
            writer.writerow(
                [
                    _csv_value(column, value)
                    for column, value in zip(TABLE5_COLUMNS, record, strict=True)
                ]
            )
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", r"\|") for cell in row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in notes]
    with io.atomic_path(paths[1]) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with io.atomic_path(paths[2]) as tmp:
        tmp.write_text(_table5_latex(title, header, rows, group_starts, notes), encoding="utf-8")
    logger.info("wrote %s", ", ".join(str(path) for path in paths))
    return paths


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "ρ": r"$\rho$",
    "–": "--",
    "−": "$-$",
    "‖": r"$\|$",
}


def _latex_text(text: str) -> str:
    import re

    # Markdown links become their label in typewriter type.
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", lambda m: "\x00" + m.group(1) + "\x01", text)
    escaped = "".join(_LATEX_ESCAPES.get(character, character) for character in text)
    escaped = escaped.replace("\x00", r"\texttt{").replace("\x01", "}")
    # A leading minus sign reads as a hyphen in text mode, so it is set as math.
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", escaped)


def _table5_latex(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    group_starts: Sequence[int],
    notes: Sequence[str],
) -> str:
    lines = [
        "% Generated by modelpred.applications.shapley; needs \\usepackage{booktabs}.",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _latex_text(title) + "}",
        r"\label{tab:table5-shapley}",
        r"\begin{tabular}{" + "l" * len(header) + "}",
        r"\toprule",
        " & ".join(_latex_text(cell) for cell in header) + r" \\",
        r"\midrule",
    ]
    for index, row in enumerate(rows):
        if index in group_starts and index > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(_latex_text(cell) for cell in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "", r"\begin{minipage}{\linewidth}\footnotesize"]
    lines += [_latex_text(note) + r"\par" for note in notes]
    lines += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(lines)


FIGURE_DPI = 150
_PNG_METADATA = {"Software": None}
_PDF_METADATA = {"CreationDate": None, "Creator": None}


def save_figure(figure, out_prefix: str | os.PathLike) -> list[Path]:
    """Write a matplotlib figure as ``{out_prefix}.png`` and ``.pdf`` without dates or versions."""
    prefix = Path(out_prefix)
    paths = [prefix.with_name(prefix.name + ".png"), prefix.with_name(prefix.name + ".pdf")]
    with io.atomic_path(paths[0]) as tmp:
        figure.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata=_PNG_METADATA)
    with io.atomic_path(paths[1]) as tmp:
        figure.savefig(tmp, format="pdf", metadata=_PDF_METADATA)
    logger.info("wrote %s", ", ".join(str(path) for path in paths))
    return paths


def figure4(results: Sequence[ShapleyResults], out_prefix: str | os.PathLike) -> list[Path]:
    """Draw Figure 4: total time of ModelPred and the solver against T, with ModelPred's Spearman ρ.

    One panel per dataset. The left axis (log scale) shows total wall
    seconds; the right axis shows Spearman's ρ between ModelPred's and the
    solver's values at the same T.

    Returns
    -------
    list of Path
        The PNG and PDF files.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, NullLocator

    if not results:
        raise ValueError("Figure 4 needs at least one dataset's Shapley results")
    figure = Figure(figsize=(4.2 * len(results), 3.8), layout="constrained")
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    colors = {"modelpred": "#0072B2", "solver": "#D55E00", "spearman": "#009E73"}
    legend: dict[str, Any] = {}
    for ax, result in zip(axes, results, strict=True):
        T = result.checkpoints
        for method in ("modelpred", "solver"):
            if method in result.estimators:
                (line,) = ax.plot(
                    T, result.estimators[method].total_seconds, marker="o", color=colors[method]
                )
                legend[f"{METHOD_LABELS[method]}: total time"] = line
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Ticks at the T that ran, in plain numbers.
        ax.set_xticks(T, labels=[str(t) for t in T])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("permutations T")
        ax.set_ylabel("total wall time (s)")
        ax.set_title(DATASET_LABELS.get(result.dataset, result.dataset))
        if "modelpred" in result.estimators and "solver" in result.estimators:
            estimate = result.estimators["modelpred"].run.values
            truth = result.estimators["solver"].run.values
            rho = np.array(
                [compare_values(estimate[k], truth[k])["spearman"] for k in range(len(T))]
            )
            twin = ax.twinx()
            (line,) = twin.plot(T, rho, marker="s", linestyle="--", color=colors["spearman"])
            legend["ModelPred: Spearman ρ vs solver"] = line
            low = np.nanmin(rho) if np.isfinite(rho).any() else 0.0
            twin.set_ylim(min(0.0, low - 0.05), 1.0)
            twin.set_ylabel("Spearman ρ vs solver")
    figure.legend(
        list(legend.values()), list(legend), loc="outside lower center", ncol=3, fontsize="small"
    )
    return save_figure(figure, out_prefix)
