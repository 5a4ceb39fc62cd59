"""Memorization and influence of training points, by retraining or by a surrogate.

This implements the memorization and influence experiments of Zeng, Just,
Wang, Jin and Chen, "ModelPred: A Framework for Predicting Trained Model
from Training Data" (called the paper below): Figures 6, 7, 8 and 10.

Let A be a learning algorithm, D = {(x₁, y₁), …, (x_n, y_n)} a training set
and f_θ the classifier with parameters θ. Every estimator here needs only a
*θ-predictor*: a function that maps subsets of D, given as count masks
(B, n), to parameters (B, p). :func:`solver_predictor` retrains the base
model on every subset, :func:`surrogate_predictor` queries a trained ModelPred
surrogate Â, and any other callable with that signature works too (an NN
base model, for instance).

Leave-one-out memorization (deterministic A)
    mem(i) = conf(A(D), xᵢ, yᵢ) − conf(A(D ∖ i), xᵢ, yᵢ),
    where conf(θ, x, y) is the probability f_θ gives to class y at x.

Subsampling memorization (Feldman and Zhang, NeurIPS 2020)
    Draw m subsets S₁, …, S_m of D of equal size ⌊r·n⌉ (r = 0.7). With the
    score sⱼ(x, y) = 1[f_{A(Sⱼ)}(x) = y] (or the confidence),
    mem(i) = mean_{j: i∈Sⱼ} sⱼ(xᵢ, yᵢ) − mean_{j: i∉Sⱼ} sⱼ(xᵢ, yᵢ).

Influence of training point i on an evaluation point z = (x, y)
    infl(i, z) = mean_{j: i∈Sⱼ} sⱼ(x, y) − mean_{j: i∉Sⱼ} sⱼ(x, y),
    from the same subsets, so mem(i) = infl(i, (xᵢ, yᵢ)).

Removal curves (Figure 6)
    For a threshold τ, the base model is retrained by its solver on
    {i : mem(i) ≤ τ} and scored on the test set. Every estimator's curve is
    scored by the same solver, so the curves compare how well each
    estimator ranks the points, not how well it predicts accuracy. A
    surrogate's leave-one-out changes may be far smaller than the solver's.
    Estimators on different scales therefore get their own thresholds, each
    chosen to remove the estimator's top k points, and their curves are
    compared against the number of points removed.

Count masks
    A mask entry c ≥ 0 counts how often a point occurs in the subset. The
    solver predictor repeats such a point c times, so its loss counts c
    times. The surrogate's sum pooling multiplies the point's embedding by
    c, which is the same multiset semantics. Leave-one-out and subsampling
    use 0/1 masks only; bootstrap bagging (:mod:`.calibration`) uses counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models import BaseModel

logger = logging.getLogger(__name__)

ThetaPredictor = Callable[[np.ndarray], np.ndarray]
"""Maps count masks (B, n) over the points of D to parameters θ (B, p)."""

SCORES = ("correct", "confidence")
"""Scores sⱼ(x, y): 1 when f predicts y (the paper's definition), or f's probability of y."""

SUBSET_STREAM = 0x6D656D6F
"""Seed word that keeps the subset draws apart from other draws seeded by the same master seed."""

PROBABILITY_CHUNK = 1 << 22
"""Upper bound on models × points × classes evaluated at once, to bound memory."""


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block and restore the thread count after it.

    One thread fixes the order of torch's reductions, so results do not
    depend on the machine's core count, and the many small solves here gain
    nothing from more threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- θ-predictors


def as_counts(masks: np.ndarray, n: int) -> np.ndarray:
    """Return ``masks`` as a (B, n) int64 array of non-negative counts.

    Raises
    ------
    ValueError
        If the shape is not (B, n) or an entry is negative or not a whole number.
    """
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != n:
        raise ValueError(f"masks must have shape (B, {n}) to match the points, got {masks.shape}")
    counts = masks.astype(np.int64)
    if np.any(counts != masks) or np.any(counts < 0):
        raise ValueError("masks must hold non-negative whole counts (0/1 for plain subsets)")
    return counts


def solver_predictor(model: BaseModel, X: np.ndarray, y: np.ndarray) -> ThetaPredictor:
    """Return a θ-predictor that retrains ``model`` on every subset.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A; ``model.fit`` trains one subset.
    X, y : ndarray, shapes (n, d) and (n,)
        The points of D that masks refer to.

    Returns
    -------
    callable
        ``predict(masks)`` with masks (B, n) of counts returns θ (B, p). A
        point with count c enters the fit c times. Subsets that lack a class
        get θ = 0, as ``model.fit`` defines.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)

    def predict(masks: np.ndarray) -> np.ndarray:
        counts = as_counts(masks, n)
        theta = np.empty((len(counts), model.n_params))
        with single_thread():
            for row, count in enumerate(counts):
                members = np.repeat(np.arange(n), count)
                theta[row] = model.fit(X[members], y[members])
        return theta

    return predict


def surrogate_predictor(surrogate, X: np.ndarray, y: np.ndarray) -> ThetaPredictor:
    """Return a θ-predictor that queries a trained surrogate Â.

    Parameters
    ----------
    surrogate : modelpred.surrogate.Surrogate
        A ``modelpred`` or ``paralearn`` surrogate (one that outputs θ).
        The points need not be the ones it was trained on.
    X, y : ndarray, shapes (n, d) and (n,)
        The points of D that masks refer to.

    Returns
    -------
    callable
        ``predict(masks)`` with masks (B, n) of counts returns θ̂ (B, p).
        The DeepSets sum counts a point c times, the multiset semantics of
        :func:`solver_predictor`.
    """
    if surrogate.predicts_utility:
        raise ValueError(
            f"a '{surrogate.method}' surrogate predicts a utility, not θ; "
            "load the 'modelpred' or 'paralearn' surrogate instead"
        )
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)

    def predict(masks: np.ndarray) -> np.ndarray:
        counts = as_counts(masks, n)
        with single_thread():
            return surrogate.predict(X, y, counts.astype(np.float64))

    return predict


# --------------------------------------------------------------------------- scores


def point_scores(
    model: BaseModel, theta: np.ndarray, X: np.ndarray, y: np.ndarray, score: str = "correct"
) -> np.ndarray:
    """Score every model on every point.

    Parameters
    ----------
    model : BaseModel
        Supplies ``predict`` and ``predict_proba`` for a batch of θ.
    theta : ndarray, shape (B, p)
    X, y : ndarray, shapes (N, d) and (N,)
    score : {'correct', 'confidence'}
        1[f_θ(x) = y], or the probability f_θ gives to y.

    Returns
    -------
    ndarray, shape (B, N)
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.int64))
    out = np.empty((len(theta), len(y_t)))
    chunk = max(1, PROBABILITY_CHUNK // max(1, len(y_t) * model.n_classes))
    with single_thread(), torch.no_grad():
        for start in range(0, len(theta), chunk):
            block = torch.as_tensor(theta[start : start + chunk])
            if score == "correct":
                values = (model.predict(block, X_t) == y_t).to(torch.float64)
            else:
                probs = model.predict_proba(block, X_t)  # (b, N, K)
                values = probs.gather(-1, y_t.expand(len(block), -1)[..., None])[..., 0]
            out[start : start + chunk] = values.numpy()
    return out


def confidence_of_label(
    model: BaseModel, theta: np.ndarray, X: np.ndarray, y: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """Return conf(θ_j, x_j, y_j) for matching rows of θ (N, p) and points (N, d), shape (N,)."""
    theta = np.asarray(theta, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    out = np.empty(len(y))
    with single_thread(), torch.no_grad():
        for start in range(0, len(y), chunk):
            stop = min(start + chunk, len(y))
            # predict_proba scores every θ of the block on every point of the block,
            # and only the diagonal pairs each θ with its own point.
            probs = model.predict_proba(
                torch.tensor(theta[start:stop]), torch.tensor(X[start:stop])
            )
            diagonal = torch.arange(stop - start)
            out[start:stop] = probs[diagonal, diagonal, torch.as_tensor(y[start:stop])].numpy()
    return out


# --------------------------------------------------------------------------- leave-one-out


@dataclass
class LeaveOneOut:
    """Models trained on D and on D without each of some points.

    Attributes
    ----------
    points : ndarray of int, shape (m,)
        The left-out points, as indices into D.
    theta_full : ndarray, shape (p,)
        A(D) or its prediction.
    theta_without : ndarray, shape (m, p)
        Row j is A(D ∖ points[j]) or its prediction.
    seconds : float
        Wall time of the θ-predictor calls.
    """

    points: np.ndarray
    theta_full: np.ndarray
    theta_without: np.ndarray
    seconds: float

    def parameter_changes(self) -> np.ndarray:
        """Return θ(D ∖ i) − θ(D) for every left-out point, shape (m, p)."""
        return self.theta_without - self.theta_full


def leave_one_out(
    predict_theta: ThetaPredictor, n: int, points: Sequence[int] | None = None, batch: int = 512
) -> LeaveOneOut:
    """Predict θ on D and on D minus each point of ``points``.

    Parameters
    ----------
    predict_theta : callable
        A θ-predictor over the n points of D.
    n : int
        Size of D.
    points : sequence of int, optional
        Points to leave out one at a time; default all n.
    batch : int
        Subsets per predictor call.

    Returns
    -------
    LeaveOneOut
    """
    points = np.arange(n) if points is None else np.asarray(points, dtype=np.int64)
    if len(points) and (points.min() < 0 or points.max() >= n):
        raise ValueError(
            f"points must index the {n} points of D, got values {points.min()}..{points.max()}"
        )
    started = time.perf_counter()
    theta_full = predict_theta(np.ones((1, n), dtype=np.int64))[0]
    parts = []
    for start in range(0, len(points), batch):
        chunk = points[start : start + batch]
        masks = np.ones((len(chunk), n), dtype=np.int64)
        masks[np.arange(len(chunk)), chunk] = 0
        parts.append(predict_theta(masks))
    theta_without = np.concatenate(parts) if parts else np.zeros((0, len(theta_full)))
    return LeaveOneOut(points, theta_full, theta_without, time.perf_counter() - started)


def leave_one_out_memorization(
    model: BaseModel, loo: LeaveOneOut, X: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Return mem(i) = conf(A(D), xᵢ, yᵢ) − conf(A(D ∖ i), xᵢ, yᵢ) for the left-out points.

    Parameters
    ----------
    model : BaseModel
    loo : LeaveOneOut
        From :func:`leave_one_out` over the same D.
    X, y : ndarray, shapes (n, d) and (n,)
        The points of D.

    Returns
    -------
    ndarray, shape (m,)
        One value per entry of ``loo.points``, in [−1, 1].
    """
    X_left, y_left = np.asarray(X)[loo.points], np.asarray(y)[loo.points]
    theta_full = np.broadcast_to(loo.theta_full, loo.theta_without.shape)
    return confidence_of_label(model, theta_full, X_left, y_left) - confidence_of_label(
        model, loo.theta_without, X_left, y_left
    )


# --------------------------------------------------------------------------- subsampling


def draw_subsets(n: int, n_subsets: int, fraction: float = 0.7, seed: int = 0) -> np.ndarray:
    """Draw subsets of equal size round(fraction · n) uniformly without replacement.

    Returns
    -------
    ndarray of bool, shape (n_subsets, n)
        Row j is the membership mask of Sⱼ; the rows are drawn from a
        generator seeded by (seed, a fixed stream word), so a seed gives the
        same subsets on every machine.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    size = int(round(fraction * n))
    if not 0 < size < n:
        raise ValueError(
            f"fraction {fraction} of {n} points gives subsets of {size} points, but every "
            "point must be able to be in and out of a subset; use more points or another fraction"
        )
    rng = np.random.default_rng([int(seed), SUBSET_STREAM])
    # Ranking i.i.d. uniform keys per row picks a uniform subset of each row in one vectorised draw.
    keys = rng.random((int(n_subsets), n))
    chosen = np.argsort(keys, axis=1)[:, :size]
    masks = np.zeros((int(n_subsets), n), dtype=bool)
    np.put_along_axis(masks, chosen, True, axis=1)
    return masks


def _in_out_counts(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_in = masks.sum(axis=0).astype(np.float64)
    n_out = len(masks) - n_in
    missing = np.flatnonzero((n_in == 0) | (n_out == 0))
    if len(missing):
        raise ValueError(
            f"points {missing[:10].tolist()} are in every subset or in none of the "
            f"{len(masks)} subsets, so their memorization is undefined; draw more subsets"
        )
    return n_in, n_out


def influence_from_scores(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Return infl(i, k) = mean score on k of subsets with i − mean of subsets without i.

    Parameters
    ----------
    masks : ndarray of bool, shape (m, n)
        Subset memberships of the n points of D.
    scores : ndarray, shape (m, N)
        ``scores[j, k]`` = sⱼ on evaluation point k.

    Returns
    -------
    ndarray, shape (n, N)
    """
    masks = np.asarray(masks, dtype=np.float64)
    n_in, n_out = _in_out_counts(masks)
    sum_in = masks.T @ scores  # (n, N)
    sum_out = scores.sum(axis=0)[None, :] - sum_in  # (n, N)
    return sum_in / n_in[:, None] - sum_out / n_out[:, None]


def memorization_from_scores(masks: np.ndarray, self_scores: np.ndarray) -> np.ndarray:
    """Return mem(i) from the scores of every subset's model on the points of D themselves.

    Parameters
    ----------
    masks : ndarray of bool, shape (m, n)
    self_scores : ndarray, shape (m, n)
        ``self_scores[j, i]`` = sⱼ(xᵢ, yᵢ).

    Returns
    -------
    ndarray, shape (n,)
        The diagonal of :func:`influence_from_scores` with D as evaluation set.
    """
    masks = np.asarray(masks, dtype=np.float64)
    n_in, n_out = _in_out_counts(masks)
    sum_in = (masks * self_scores).sum(axis=0)
    sum_out = self_scores.sum(axis=0) - sum_in
    return sum_in / n_in - sum_out / n_out


@dataclass
class SubsamplingEstimate:
    """Memorization and influence estimated from random subsets of D.

    Attributes
    ----------
    masks : ndarray of bool, shape (m, n)
        The subsets Sⱼ.
    memorization : ndarray, shape (n,)
    influence : ndarray, shape (n, N) or None
        On the evaluation points, when some were given.
    seconds : float
        Wall time of predicting θ and scoring, the whole estimate.
    """

    masks: np.ndarray
    memorization: np.ndarray
    influence: np.ndarray | None
    seconds: float


def subsampling_memorization(
    predict_theta: ThetaPredictor,
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_subsets: int,
    fraction: float = 0.7,
    seed: int = 0,
    X_eval: np.ndarray | None = None,
    y_eval: np.ndarray | None = None,
    score: str = "correct",
    batch: int = 256,
) -> SubsamplingEstimate:
    """Estimate memorization (and influence on evaluation points) from random subsets.

    Parameters
    ----------
    predict_theta : callable
        A θ-predictor over the n points of D.
    model : BaseModel
        Maps θ to predictions (``predict``, ``predict_proba``).
    X, y : ndarray, shapes (n, d) and (n,)
        The points of D.
    n_subsets : int
        Subsets m.
    fraction : float
        Subset size as a fraction of n (0.7 in Feldman and Zhang).
    seed : int
        Seeds the subsets (see :func:`draw_subsets`).
    X_eval, y_eval : ndarray, optional
        Evaluation points (a test set) for the influence matrix.
    score : {'correct', 'confidence'}
        See :func:`point_scores`.
    batch : int
        Subsets per predictor call.

    Returns
    -------
    SubsamplingEstimate
    """
    n = len(y)
    masks = draw_subsets(n, n_subsets, fraction, seed)
    started = time.perf_counter()
    self_scores = np.empty((len(masks), n))
    eval_scores = None if X_eval is None else np.empty((len(masks), len(y_eval)))
    for start in range(0, len(masks), batch):
        theta = predict_theta(masks[start : start + batch].astype(np.int64))
        self_scores[start : start + batch] = point_scores(model, theta, X, y, score)
        if eval_scores is not None:
            eval_scores[start : start + batch] = point_scores(model, theta, X_eval, y_eval, score)
    memorization = memorization_from_scores(masks, self_scores)
    influence = None if eval_scores is None else influence_from_scores(masks, eval_scores)
    return SubsamplingEstimate(masks, memorization, influence, time.perf_counter() - started)


# --------------------------------------------------------------------------- removal curves


def threshold_grid(
    estimates: Sequence[np.ndarray], n_thresholds: int, max_removed_fraction: float = 0.5
) -> np.ndarray:
    """Return equally spaced thresholds shared by estimates on one scale.

    The grid ends at the largest value of any estimate, where nothing is
    removed. It starts where no estimate removes more than
    ``max_removed_fraction`` of the points, because a model trained on a
    small remainder reflects little of which points an estimator ranks high.
    Use it for estimators whose values are comparable (two subsampling
    estimates); :func:`rank_thresholds` suits estimates on different scales.

    Returns
    -------
    ndarray, shape (n_thresholds,)
        Increasing thresholds.
    """
    _check_grid(n_thresholds, max_removed_fraction)
    high = max(float(np.max(values)) for values in estimates)
    low = max(float(np.quantile(values, 1 - max_removed_fraction)) for values in estimates)
    return np.linspace(min(low, high), high, n_thresholds)


def rank_thresholds(
    values: np.ndarray, n_thresholds: int, max_removed_fraction: float = 0.5
) -> np.ndarray:
    """Return one estimate's thresholds that remove its top k points for evenly spaced k.

    k runs from 0 to ``max_removed_fraction`` · n. The threshold for k is the
    (k + 1)-th largest value, so exactly the k largest values exceed it
    unless values tie. Repeated thresholds (ties, or more grid points than
    values of k) are dropped.

    Returns
    -------
    ndarray, shape (t,), t ≤ n_thresholds
        Decreasing thresholds, the first being the largest value (nothing removed).
    """
    _check_grid(n_thresholds, max_removed_fraction)
    ordered = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    largest_k = int(np.floor(max_removed_fraction * len(ordered)))
    largest_k = min(largest_k, len(ordered) - 1)
    ks = np.unique(np.round(np.linspace(0, largest_k, n_thresholds)).astype(np.int64))
    thresholds = ordered[ks]
    _, first = np.unique(thresholds, return_index=True)
    return thresholds[np.sort(first)]


def _check_grid(n_thresholds: int, max_removed_fraction: float) -> None:
    if n_thresholds < 2:
        raise ValueError(f"n_thresholds must be at least 2, got {n_thresholds}")
    if not 0 < max_removed_fraction <= 1:
        raise ValueError(f"max_removed_fraction must lie in (0, 1], got {max_removed_fraction}")


def retrain_accuracy(
    model: BaseModel, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> Callable[[np.ndarray], float]:
    """Return ``accuracy(keep)``: test accuracy of the solver trained on the kept points of D.

    Results are cached by the kept set, because thresholds often keep the
    same points.
    """
    cache: dict[bytes, float] = {}

    def accuracy(keep: np.ndarray) -> float:
        keep = np.asarray(keep, dtype=bool)
        key = np.packbits(keep).tobytes()
        if key not in cache:
            with single_thread():
                theta = model.fit(X[keep], y[keep])
            cache[key] = float(model.numpy_eval("accuracy", theta, X_test, y_test))
        return cache[key]

    return accuracy


def removal_curve(
    memorization: np.ndarray, thresholds: np.ndarray, accuracy_of: Callable[[np.ndarray], float]
) -> tuple[np.ndarray, np.ndarray]:
    """Return test accuracy and points removed after removing every point with mem > τ.

    Parameters
    ----------
    memorization : ndarray, shape (n,)
    thresholds : ndarray, shape (t,)
    accuracy_of : callable
        ``accuracy_of(keep)`` for a bool mask (n,) of kept points, e.g. from
        :func:`retrain_accuracy`.

    Returns
    -------
    accuracy : ndarray, shape (t,)
    n_removed : ndarray of int, shape (t,)
    """
    accuracy = np.empty(len(thresholds))
    n_removed = np.empty(len(thresholds), dtype=np.int64)
    for index, threshold in enumerate(thresholds):
        keep = np.asarray(memorization) <= threshold
        accuracy[index] = accuracy_of(keep)
        n_removed[index] = int((~keep).sum())
    return accuracy, n_removed


# --------------------------------------------------------------------------- selections for figures


def nearest_to_levels(
    values: np.ndarray, levels: Sequence[float], per_level: int
) -> dict[float, np.ndarray]:
    """Return, for each level, up to ``per_level`` points whose value is nearest to it.

    Every point belongs to the level it is nearest to (the first of two
    equally near levels), so a level beyond the range of the values may get
    no point at all rather than points that lie nearer to another level.
    Within a level, points come in increasing distance.

    Returns
    -------
    dict of float to ndarray of int
        Indices into ``values`` per level.
    """
    values = np.asarray(values, dtype=np.float64)
    targets = np.asarray(levels, dtype=np.float64)
    distance = np.abs(values[:, None] - targets[None, :])  # (n, L)
    owner = np.argmin(distance, axis=1)
    chosen = {}
    for index, level in enumerate(targets):
        members = np.flatnonzero(owner == index)
        order = np.argsort(distance[members, index], kind="stable")[:per_level]
        chosen[float(level)] = members[order]
    return chosen


def influence_pairs(
    memorization: np.ndarray, influence: np.ndarray, n_rows: int, per_side: int
) -> list[dict[str, np.ndarray | int]]:
    """Return the most memorized points of D with their extreme-influence evaluation points.

    Returns
    -------
    list of dict
        One dict per row, in decreasing memorization: ``train`` (index into
        D), ``high`` and ``low`` (indices of evaluation points, ``per_side``
        each; ``high`` in decreasing influence, ``low`` in increasing).
    """
    rows = []
    for train in np.argsort(-np.asarray(memorization), kind="stable")[:n_rows]:
        order = np.argsort(-influence[train], kind="stable")
        rows.append({"train": int(train), "high": order[:per_side], "low": order[::-1][:per_side]})
    return rows


def summarize_estimators(
    memorization: Mapping[str, np.ndarray], seconds: Mapping[str, float]
) -> dict[str, float]:
    """Return ranges, agreement and the time ratio of the estimators, for logs and summaries."""
    names = list(memorization)
    summary: dict[str, float] = {}
    for name in names:
        summary[f"{name}_min"] = float(np.min(memorization[name]))
        summary[f"{name}_max"] = float(np.max(memorization[name]))
        summary[f"{name}_seconds"] = float(seconds[name])
    if len(names) == 2:
        from scipy.stats import pearsonr, spearmanr

        first, second = (np.asarray(memorization[name]) for name in names)
        summary["spearman"] = float(spearmanr(first, second).statistic)
        summary["pearson"] = float(pearsonr(first, second).statistic)
        summary["time_ratio"] = float(seconds[names[1]] / seconds[names[0]])
    return summary


# --------------------------------------------------------------------------- workflow stages


ESTIMATOR_LABELS = {"solver": "Solver (retraining)", "modelpred": "ModelPred"}
"""Legend labels of the estimators that the removal panels compare."""


def first_points(dataset, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (X, y, train indices) of D, the first ``n_points`` points of the train split.

    The train split is a stratified random draw, so its first points are a
    random subset of the training digits, not a sorted or curated part.
    """
    n_train = len(dataset.train)
    if not 2 <= n_points <= n_train:
        raise ValueError(
            f"n_points = {n_points} but dataset '{dataset.name}' has {n_train} training points; "
            f"set applications.memorization.n_points to a value in 2..{n_train}"
        )
    points = np.arange(n_points)
    return dataset.train.X[points], dataset.train.y[points], points


def _load_surrogate_for(surrogate_path, dataset, model_name: str):
    from ..surrogate import load_surrogate

    surrogate = load_surrogate(surrogate_path)
    if surrogate.model.name != model_name:
        raise ValueError(
            f"{surrogate_path} predicts base model '{surrogate.model.name}', not '{model_name}'; "
            "pass the surrogate trained for that base model"
        )
    if (surrogate.model.n_features, surrogate.model.n_classes) != (
        dataset.n_features,
        dataset.n_classes,
    ):
        raise ValueError(
            f"{surrogate_path} expects {surrogate.model.n_features} features and "
            f"{surrogate.model.n_classes} classes, but dataset '{dataset.name}' has "
            f"{dataset.n_features} and {dataset.n_classes}; "
            "pass the surrogate trained on this dataset"
        )
    return surrogate


def run_leave_one_out_memorization(
    data_path,
    surrogate_path,
    out_h5,
    out_json,
    *,
    model_name: str = "lr",
    n_points: int = 200,
    n_thresholds: int = 20,
    max_removed_fraction: float = 0.5,
    extra_attrs: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Compute leave-one-out memorization by the solver and by ModelPred, and their removal curves.

    D is the first ``n_points`` training points of ``data_path``. The
    surrogate is the one trained on the dataset's permutation samples, whose
    prefixes cover every subset size, so D and D ∖ i lie in its training
    range. The solver is the base model the surrogate's sidecar names, with
    its λ.

    Writes ``out_h5`` in the removal-panel layout that :func:`read_removal_panel`
    reads, and ``out_json`` with wall times and summary numbers, which are
    also returned. ``extra_attrs`` (provenance) are merged into the root
    attributes of ``out_h5`` last.
    """
    from .. import io

    dataset = io.read_dataset(data_path)
    surrogate = _load_surrogate_for(surrogate_path, dataset, model_name)
    model = surrogate.model
    X, y, points = first_points(dataset, n_points)
    predictors = {
        "solver": solver_predictor(model, X, y),
        "modelpred": surrogate_predictor(surrogate, X, y),
    }
    memorization, seconds = {}, {}
    for name, predict_theta in predictors.items():
        started = time.perf_counter()
        loo = leave_one_out(predict_theta, len(y))
        memorization[name] = leave_one_out_memorization(model, loo, X, y)
        seconds[name] = time.perf_counter() - started
        logger.info(
            "leave-one-out memorization by %s: %.2f s for %d points", name, seconds[name], len(y)
        )

    # The solver's and the surrogate's leave-one-out changes need not share a
    # scale, so every estimator removes its own top-k points for the same ks.
    accuracy_of = retrain_accuracy(model, X, y, dataset.test.X, dataset.test.y)
    arrays: dict[str, np.ndarray] = {"points": points}
    for name, values in memorization.items():
        thresholds = rank_thresholds(values, n_thresholds, max_removed_fraction)
        accuracy, n_removed = removal_curve(values, thresholds, accuracy_of)
        arrays[f"estimators/{name}/memorization"] = values
        arrays[f"estimators/{name}/thresholds"] = thresholds
        arrays[f"estimators/{name}/accuracy"] = accuracy[None, :]
        arrays[f"estimators/{name}/n_removed"] = n_removed[None, :]
        arrays[f"estimators/{name}/seconds"] = np.float64(seconds[name])

    summary = summarize_estimators(memorization, seconds)
    summary["full_accuracy"] = accuracy_of(np.ones(len(y), dtype=bool))
    attrs = {
        **io.provenance_attrs(inputs={"data": data_path, "surrogate": surrogate_path}),
        "dataset": dataset.name,
        "model": model.name,
        "form": "leave_one_out",
        "x_axis": "removed",
        "n_points": len(y),
        "n_test": len(dataset.test),
        "full_accuracy": summary["full_accuracy"],
        "estimator_labels": json.dumps({name: ESTIMATOR_LABELS[name] for name in memorization}),
        "title": (
            f"{dataset.name}, {model.name.upper()}: leave-one-out memorization "
            f"of {len(y)} training points"
        ),
        **(extra_attrs or {}),
    }
    io.write_arrays(out_h5, arrays, attrs)
    io.write_json(
        out_json, {"dataset": dataset.name, "model": model.name, "n_points": len(y), **summary}
    )
    logger.info(
        "ModelPred took %.2f%% of the solver's time (%.3f s vs %.3f s); "
        "Spearman correlation of the two estimates %.3f",
        100 * summary["time_ratio"],
        seconds["modelpred"],
        seconds["solver"],
        summary["spearman"],
    )
    return summary


def influence_agreement(
    reference: SubsamplingEstimate,
    other: SubsamplingEstimate,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    top: int = 3,
) -> dict[str, float]:
    """Return how far two subsampling estimates agree, and how plausible their influence pairs are.

    Returns
    -------
    dict
        ``memorization_spearman`` (rank correlation of the two memorization
        estimates), ``influence_pearson`` (correlation of the two influence
        matrices, entry by entry) and, per estimate, ``{name}_top_same_label``:
        the fraction of each training point's ``top`` highest-influence test
        points that share its label (near 1/K when the ranking is random).
    """
    from scipy.stats import spearmanr

    summary = {
        "memorization_spearman": float(
            spearmanr(reference.memorization, other.memorization).statistic
        ),
        "influence_pearson": float(
            np.corrcoef(reference.influence.ravel(), other.influence.ravel())[0, 1]
        ),
    }
    for name, estimate in (("reference", reference), ("other", other)):
        highest = np.argsort(-estimate.influence, axis=1, kind="stable")[:, :top]
        summary[f"{name}_top_same_label"] = float(
            (test_labels[highest] == train_labels[:, None]).mean()
        )
    return summary


def run_influence(
    data_path,
    surrogate_path,
    out_h5,
    out_json=None,
    *,
    model_name: str = "lr",
    n_points: int = 200,
    n_subsets: int = 2000,
    solver_subsets: int = 0,
    fraction: float = 0.7,
    score: str = "correct",
    seed: int = 0,
    extra_attrs: Mapping[str, Any] | None = None,
) -> dict[str, SubsamplingEstimate]:
    """Estimate subsampling memorization and influence on the test split.

    ModelPred predicts ``n_subsets`` subsets; the solver retrains
    ``solver_subsets`` other subsets (0 skips it), which checks the
    surrogate's estimate at a similar cost. D is the first ``n_points``
    training points, as in :func:`run_leave_one_out_memorization`, and the
    evaluation points are the whole test split.

    Writes ``out_h5`` with ``points`` (n,), ``test_points`` (N,) and per
    estimator ``estimators/{name}/memorization`` (n,),
    ``estimators/{name}/influence`` (n, N) and ``estimators/{name}/seconds``;
    and ``out_json``, when given, with wall times and, when both estimators
    ran, their agreement (:func:`influence_agreement`, the solver as
    reference). ``extra_attrs`` (provenance) are merged into the root
    attributes of ``out_h5`` last.

    Returns
    -------
    dict of str to SubsamplingEstimate
        By estimator name (``modelpred``, and ``solver`` when it ran).
    """
    from .. import io

    dataset = io.read_dataset(data_path)
    surrogate = _load_surrogate_for(surrogate_path, dataset, model_name)
    X, y, points = first_points(dataset, n_points)
    runs = {"modelpred": (surrogate_predictor(surrogate, X, y), n_subsets)}
    if solver_subsets > 0:
        runs["solver"] = (solver_predictor(surrogate.model, X, y), solver_subsets)
    estimates = {}
    arrays = {"points": points, "test_points": np.arange(len(dataset.test))}
    for offset, (name, (predict_theta, subsets)) in enumerate(runs.items()):
        # Each estimator draws its own subsets, so neither reuses the other's draws.
        estimates[name] = subsampling_memorization(
            predict_theta,
            surrogate.model,
            X,
            y,
            n_subsets=subsets,
            fraction=fraction,
            seed=seed + offset,
            X_eval=dataset.test.X,
            y_eval=dataset.test.y,
            score=score,
        )
        logger.info(
            "subsampling memorization and influence by %s of %d points on %d test points "
            "from %d subsets: %.2f s",
            name,
            len(y),
            len(dataset.test),
            subsets,
            estimates[name].seconds,
        )
        arrays[f"estimators/{name}/memorization"] = estimates[name].memorization
        arrays[f"estimators/{name}/influence"] = estimates[name].influence
        arrays[f"estimators/{name}/seconds"] = np.float64(estimates[name].seconds)

    summary = {
        "dataset": dataset.name,
        "model": surrogate.model.name,
        "n_points": len(y),
        "score": score,
        **{f"{name}_subsets": subsets for name, (_, subsets) in runs.items()},
        **{f"{name}_seconds": estimate.seconds for name, estimate in estimates.items()},
    }
    if "solver" in estimates:
        agreement = influence_agreement(
            estimates["solver"], estimates["modelpred"], y, dataset.test.y
        )
        summary.update(
            {
                "memorization_spearman": agreement["memorization_spearman"],
                "influence_pearson": agreement["influence_pearson"],
                "solver_top3_same_label": agreement["reference_top_same_label"],
                "modelpred_top3_same_label": agreement["other_top_same_label"],
            }
        )
        logger.info(
            "agreement with the solver: memorization Spearman %.3f, influence Pearson %.3f; "
            "top-3 influence test points share the training label for %.0f%% (solver) and "
            "%.0f%% (ModelPred) of the points",
            summary["memorization_spearman"],
            summary["influence_pearson"],
            100 * summary["solver_top3_same_label"],
            100 * summary["modelpred_top3_same_label"],
        )
    attrs = {
        **io.provenance_attrs(inputs={"data": data_path, "surrogate": surrogate_path}),
        "dataset": dataset.name,
        "model": surrogate.model.name,
        "estimators": json.dumps(list(runs)),
        "n_subsets": json.dumps({name: subsets for name, (_, subsets) in runs.items()}),
        "fraction": float(fraction),
        "score": score,
        "seed": int(seed),
        **(extra_attrs or {}),
    }
    io.write_arrays(out_h5, arrays, attrs)
    if out_json is not None:
        io.write_json(out_json, summary)
    return estimates


# --------------------------------------------------------------------------- figures


FIGURE_DPI = 150
"""Resolution of the PNG files."""


def save_figure(figure, out_prefix) -> list:
    """Write ``figure`` to ``{out_prefix}.png`` and ``.pdf`` atomically, without dates."""
    from pathlib import Path

    from .. import io

    prefix = Path(out_prefix)
    paths = [prefix.with_name(prefix.name + suffix) for suffix in (".png", ".pdf")]
    with io.atomic_path(paths[0]) as tmp:
        figure.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    with io.atomic_path(paths[1]) as tmp:
        figure.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Creator": None})
    logger.info("wrote %s and %s", *paths)
    return paths


@dataclass
class RemovalPanel:
    """One panel of Figure 6: test accuracy after removing the most memorized points.

    Attributes
    ----------
    title : str
    thresholds : dict of str to ndarray, shape (t,)
        Per estimator, its thresholds τ (estimators may have different t).
    accuracy : dict of str to ndarray, shape (r, t)
        Per estimator, one row per trial (one row for a deterministic A).
    n_removed : dict of str to ndarray, shape (r, t)
    labels : dict of str to str
        Legend label per estimator.
    x_axis : {'threshold', 'removed'}
        What the accuracy is drawn against: τ (estimates on one scale), or
        the number of points removed (estimates on different scales).
    full_accuracy : float or None
        Test accuracy of the model trained on all of D.
    """

    title: str
    thresholds: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]
    n_removed: dict[str, np.ndarray]
    labels: dict[str, str]
    x_axis: str = "threshold"
    full_accuracy: float | None = None


PANEL_AXES = ("threshold", "removed")


def write_removal_panel(path, panel: RemovalPanel, attrs: Mapping | None = None) -> None:
    """Write a removal panel (see :func:`read_removal_panel` for the layout) atomically."""
    from .. import io

    if panel.x_axis not in PANEL_AXES:
        raise ValueError(f"x_axis must be one of {PANEL_AXES}, got {panel.x_axis!r}")
    arrays = {}
    for name in panel.accuracy:
        arrays[f"estimators/{name}/thresholds"] = np.asarray(panel.thresholds[name])
        arrays[f"estimators/{name}/accuracy"] = np.atleast_2d(panel.accuracy[name])
        arrays[f"estimators/{name}/n_removed"] = np.atleast_2d(panel.n_removed[name])
    root = {
        **(attrs or {}),
        "title": panel.title,
        "x_axis": panel.x_axis,
        "estimator_labels": json.dumps(panel.labels),
    }
    if panel.full_accuracy is not None:
        root["full_accuracy"] = float(panel.full_accuracy)
    io.write_arrays(path, arrays, root)


def read_removal_panel(path) -> RemovalPanel:
    """Read a removal-panel file, as :func:`run_leave_one_out_memorization` writes it.

    Layout, for other stages that add panels to Figure 6 (or use
    :func:`write_removal_panel`): per estimator name,
    ``estimators/{name}/thresholds`` (t,), ``estimators/{name}/accuracy``
    and ``estimators/{name}/n_removed`` (r, t); root attributes ``title``,
    ``x_axis`` (``threshold`` or ``removed``), ``estimator_labels`` (a JSON
    object of name to legend label) and optionally ``full_accuracy``.
    """
    from .. import io

    with io.open_checked(path, ("estimators",)) as handle:
        names = list(handle["estimators"])
        members = {}
        for name in names:
            for member in ("thresholds", "accuracy", "n_removed"):
                key = f"estimators/{name}/{member}"
                if key not in handle:
                    raise io.FormatError(
                        f"{path}: missing '{key}'; delete it and rerun the rule that writes it"
                    )
                members[name, member] = handle[key][...]
        attrs = dict(handle.attrs)
    labels = json.loads(attrs.get("estimator_labels", "{}"))
    full = attrs.get("full_accuracy")
    x_axis = str(attrs.get("x_axis", "threshold"))
    if x_axis not in PANEL_AXES:
        raise io.FormatError(f"{path}: x_axis must be one of {PANEL_AXES}, got {x_axis!r}")
    return RemovalPanel(
        title=str(attrs.get("title", path)),
        thresholds={name: members[name, "thresholds"] for name in names},
        accuracy={name: np.atleast_2d(members[name, "accuracy"]) for name in names},
        n_removed={name: np.atleast_2d(members[name, "n_removed"]) for name in names},
        labels={name: labels.get(name, name) for name in names},
        x_axis=x_axis,
        full_accuracy=None if full is None else float(full),
    )


def plot_removal_panel(accuracy_axes, lower_axes, panel: RemovalPanel) -> None:
    """Draw one panel of Figure 6 into two axes stacked one above the other.

    With ``x_axis == "threshold"`` the upper axes show test accuracy and the
    lower ones the points removed, both against τ. With ``"removed"`` the
    upper axes show test accuracy and the lower ones τ, both against the
    number of points removed. Several trials draw a mean line with a band
    of ±1 standard deviation.
    """
    import seaborn as sns

    names = sorted(panel.accuracy, key=lambda name: (name != "solver", name))
    palette = sns.color_palette("colorblind", n_colors=max(3, len(names)))
    markers = ("o", "s", "^", "D", "v")
    by_threshold = panel.x_axis == "threshold"
    for index, name in enumerate(names):
        style = {
            "color": palette[index],
            "marker": markers[index % len(markers)],
            "markersize": 4,
            "label": panel.labels[name],
        }
        accuracy = panel.accuracy[name]
        removed = panel.n_removed[name].mean(axis=0)
        thresholds = np.asarray(panel.thresholds[name])
        x = thresholds if by_threshold else removed
        mean = accuracy.mean(axis=0)
        accuracy_axes.plot(x, mean, **style)
        if len(accuracy) > 1:
            std = accuracy.std(axis=0)
            accuracy_axes.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.2)
        lower_axes.plot(x, removed if by_threshold else thresholds, **style)
    if panel.full_accuracy is not None:
        accuracy_axes.axhline(
            panel.full_accuracy, color="0.4", linestyle="--", linewidth=1, label="no point removed"
        )
    accuracy_axes.set_title(panel.title, fontsize=9)
    accuracy_axes.set_ylabel("test accuracy after removal")
    accuracy_axes.legend(fontsize=8)
    if not by_threshold and all(np.all(np.asarray(t) > 0) for t in panel.thresholds.values()):
        # Estimators on different scales share the lower axes only on a log scale.
        lower_axes.set_yscale("log")
    if by_threshold:
        lower_axes.set_ylabel("training points removed")
        lower_axes.set_xlabel("memorization threshold τ (points with mem > τ are removed)")
    else:
        lower_axes.set_ylabel("threshold τ")
        lower_axes.set_xlabel("training points removed (those with mem > τ)")


def figure6(panel_paths: Sequence, out_prefix) -> list:
    """Draw Figure 6, one column per removal-panel file, left to right, and write PNG and PDF."""
    import seaborn as sns
    from matplotlib.figure import Figure

    if not panel_paths:
        raise ValueError("Figure 6 needs at least one removal-panel file")
    panels = [read_removal_panel(path) for path in panel_paths]
    sns.set_theme(style="whitegrid", context="paper")
    figure = Figure(figsize=(max(6.5, 5.5 * len(panels)), 6.0), layout="constrained")
    axes = figure.subplots(2, len(panels), squeeze=False, sharex="col", height_ratios=(2, 1))
    for column, panel in enumerate(panels):
        plot_removal_panel(axes[0, column], axes[1, column], panel)
    figure.suptitle(
        "Test accuracy of the solver retrained without the most memorized points", fontsize=10
    )
    return save_figure(figure, out_prefix)


def read_images(features_path, rows: np.ndarray) -> np.ndarray:
    """Return the 28×28 digits of the given rows of ``features/mnist.h5``, shape (k, 28, 28)."""
    from .. import io

    with io.open_checked(features_path, ("images",)) as handle:
        images = handle["images"]
        order = np.argsort(rows)
        picked = (
            images[np.asarray(rows)[order]] if len(rows) else np.zeros((0, 28, 28), dtype=np.uint8)
        )
    out = np.empty_like(picked)
    out[order] = picked
    return out


def image_rows(split, indices: np.ndarray, dataset_name: str) -> np.ndarray:
    """Return the image rows of points of a split, raising if the split has no ``index``."""
    if split.index is None:
        raise ValueError(
            f"dataset '{dataset_name}' stores no 'index' per point, so its images cannot be drawn; "
            "Figures 7 and 10 need an image dataset built from features/mnist.h5"
        )
    return np.asarray(split.index)[np.asarray(indices, dtype=np.int64)]


def _show_digit(axes, image, caption: str, frame_color=None) -> None:
    axes.imshow(image, cmap="gray_r", vmin=0, vmax=255)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel(caption, fontsize=7, labelpad=2)
    axes.grid(False)
    for spine in axes.spines.values():
        spine.set_visible(frame_color is not None)
        if frame_color is not None:
            spine.set_edgecolor(frame_color)
            spine.set_linewidth(2)


def figure7(
    values: np.ndarray,
    labels: np.ndarray,
    images: np.ndarray,
    levels: Sequence[float],
    per_level: int,
    out_prefix,
    *,
    title: str,
    relative: bool = False,
    columns: int = 3,
) -> list:
    """Draw training digits whose estimated memorization is nearest to each level.

    A level that no estimate is nearest to shows a note instead of digits,
    and the figure then adds a block of the digits with the largest estimates.

    Parameters
    ----------
    values : ndarray, shape (n,)
        Memorization of the n points of D.
    labels : ndarray of int, shape (n,)
        Their training labels.
    images : ndarray of uint8, shape (n, 28, 28)
    levels : sequence of float
        E.g. (0, 0.5, 1); each gets one block of ``per_level`` digits.
    relative : bool
        Read a level ℓ as min + ℓ · (max − min) of ``values`` rather than as
        a memorization value, for estimates that span a small range.
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    targets = [low + level * (high - low) if relative else float(level) for level in levels]
    chosen = nearest_to_levels(values, targets, per_level)
    blocks_shown, level_texts = {}, {}
    for level, target in zip(levels, targets, strict=True):
        heading = f"memorization ≈ {target:.3g}"
        if relative:
            heading += f"\n({level:g} of the way from the lowest to the highest)"
        blocks_shown[heading] = chosen[float(target)]
        level_texts[heading] = f"{target:.3g}"
    if any(len(points) == 0 for points in chosen.values()):
        # Levels beyond the estimates' range stay empty, so the most memorized
        # digits get a block of their own.
        blocks_shown["largest estimates"] = np.argsort(-values, kind="stable")[:per_level]
    rows = int(np.ceil(per_level / columns))
    sns.set_theme(style="white", context="paper")
    figure = Figure(figsize=(3.3 * len(blocks_shown), 1.45 * rows + 1.0), layout="constrained")
    blocks = figure.subfigures(1, len(blocks_shown))
    for block, (heading, points) in zip(np.atleast_1d(blocks), blocks_shown.items(), strict=True):
        block.suptitle(heading, fontsize=9)
        axes = block.subplots(rows, columns, squeeze=False)
        for slot, cell in enumerate(axes.flat):
            if slot < len(points):
                point = points[slot]
                caption = f"label {labels[point]}\nmem {values[point]:.3g}"
                _show_digit(cell, images[point], caption)
            else:
                cell.axis("off")
        if len(points) == 0:
            block.text(
                0.5,
                0.5,
                f"no estimate is nearer to {level_texts[heading]}\nthan to another level",
                ha="center",
                va="center",
                fontsize=8,
            )
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, out_prefix)


def figure10(
    memorization: np.ndarray,
    influence: np.ndarray,
    train_labels: np.ndarray,
    train_images: np.ndarray,
    test_labels: np.ndarray,
    test_images: np.ndarray,
    out_prefix,
    *,
    n_rows: int = 5,
    per_side: int = 3,
    title: str,
) -> list:
    """Draw the most memorized training digits with their highest- and lowest-influence test digits.

    Parameters
    ----------
    memorization : ndarray, shape (n,)
    influence : ndarray, shape (n, N)
    train_labels, train_images : ndarrays, shapes (n,) and (n, 28, 28)
    test_labels, test_images : ndarrays, shapes (N,) and (N, 28, 28)
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    pairs = influence_pairs(memorization, influence, n_rows, per_side)
    sns.set_theme(style="white", context="paper")
    palette = sns.color_palette("colorblind", n_colors=3)
    columns = 1 + 2 * per_side
    figure = Figure(figsize=(1.15 * columns + 0.4, 1.45 * len(pairs) + 0.9), layout="constrained")
    axes = figure.subplots(len(pairs), columns, squeeze=False)
    for row, pair in enumerate(pairs):
        train = pair["train"]
        _show_digit(
            axes[row, 0],
            train_images[train],
            f"label {train_labels[train]}\nmem {memorization[train]:.3g}",
            "black",
        )
        for side, (key, color) in enumerate((("high", palette[2]), ("low", palette[0]))):
            for slot, test in enumerate(pair[key]):
                caption = f"label {test_labels[test]}\ninfl {influence[train, test]:+.3g}"
                _show_digit(
                    axes[row, 1 + side * per_side + slot], test_images[test], caption, color
                )
    axes[0, 0].set_title("training digit", fontsize=8)
    axes[0, 1].set_title(f"{per_side} highest-influence test digits", fontsize=8, loc="left")
    axes[0, 1 + per_side].set_title(
        f"{per_side} lowest-influence test digits", fontsize=8, loc="left"
    )
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, out_prefix)
