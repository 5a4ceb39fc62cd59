"""Accuracy metrics of predicted models and utilities, and calibration error.

Conventions
-----------
Every metric compares a prediction with the ground truth that the solver
gives on the same subsets.

- Parameter distance: ‖θ̂_j − θ*_j‖₂ for each subset j.
- NRMSE of the utility: sqrt(mean_j (û_j − u_j)²) / (max_j u_j − min_j u_j),
  a fraction (tables print it as a percentage). It is NaN when the true
  utilities are all equal, because the range that normalises it is then 0.
- Spearman's ρ: the Pearson correlation of the ranks (ties get their average
  rank). It is NaN when either side is constant, because a constant has no
  ranking. The ModelPred paper (Zeng et al.) prints such entries as "n/a".
- Expected calibration error (ECE) with M equal-width bins on the confidence
  c_i = max_k p_ik: Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|.

In the deletion and addition scenarios the subsets come in trials (one random
start set and removal or addition order per trial). :func:`trial_metrics`
computes each metric within every trial and then the mean and standard
deviation over trials, as the paper reports them. The standard deviation is
the population one (``ddof=0``).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

CONSTANT_RTOL = 1e-12
"""Relative spread below which a vector counts as constant for Spearman's ρ."""


def parameter_distance(theta_hat: np.ndarray, theta_true: np.ndarray) -> np.ndarray:
    """Compute the Euclidean distance between predicted and true parameters.

    Parameters
    ----------
    theta_hat, theta_true : ndarray, shape (m, p)
        Predicted and true flat θ of m subsets.

    Returns
    -------
    ndarray, shape (m,)
        ‖θ̂_j − θ*_j‖₂ for every subset j.
    """
    theta_hat = np.asarray(theta_hat, dtype=np.float64)
    theta_true = np.asarray(theta_true, dtype=np.float64)
    if theta_hat.shape != theta_true.shape or theta_hat.ndim != 2:
        raise ValueError(
            "theta_hat and theta_true must both have shape (m, p), "
            f"got {theta_hat.shape} and {theta_true.shape}"
        )
    return np.linalg.norm(theta_hat - theta_true, axis=1)


def _check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 1:
        raise ValueError(
            f"pred and true must both have shape (m,), got {pred.shape} and {true.shape}"
        )
    if len(true) < 2:
        raise ValueError(f"need at least 2 values to compare rankings or ranges, got {len(true)}")
    return pred, true


def nrmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Compute the root-mean-squared error normalised by the range of the truth.

    Parameters
    ----------
    pred, true : ndarray, shape (m,)
        Predicted and true utilities of m subsets, m ≥ 2.

    Returns
    -------
    float
        RMSE / (max(true) − min(true)) as a fraction; NaN if ``true`` is constant.
    """
    pred, true = _check_pair(pred, true)
    spread = float(true.max() - true.min())
    if spread == 0.0:
        return float("nan")
    return float(np.sqrt(np.mean((pred - true) ** 2)) / spread)


def is_constant(values: np.ndarray, rtol: float = CONSTANT_RTOL) -> bool:
    """Return whether the spread of ``values`` is at most ``rtol`` times their largest magnitude.

    A tolerance rather than exact equality keeps round-off in a prediction
    that is constant by construction from producing a meaningless ranking.
    """
    values = np.asarray(values, dtype=np.float64)
    spread = float(values.max() - values.min())
    return spread <= rtol * max(float(np.abs(values).max()), np.finfo(np.float64).tiny)


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
    """Compute Spearman's rank correlation between predictions and truth.

    Parameters
    ----------
    pred, true : ndarray, shape (m,)
        Predicted and true utilities of m subsets, m ≥ 2.

    Returns
    -------
    float
        ρ in [−1, 1]; NaN if either side is constant (see :func:`is_constant`).
    """
    pred, true = _check_pair(pred, true)
    if is_constant(pred) or is_constant(true):
        return float("nan")
    rank_pred = rankdata(pred)
    rank_true = rankdata(true)
    return float(np.corrcoef(rank_pred, rank_true)[0, 1])


def trial_metrics(
    trial: np.ndarray,
    size: np.ndarray,
    theta_true: np.ndarray,
    utility_true: np.ndarray,
    theta_hat: np.ndarray | None,
    utility_hat: np.ndarray,
) -> dict[str, np.ndarray | float]:
    """Compute the scenario metrics per trial and their mean and std over trials.

    Parameters
    ----------
    trial : ndarray of int, shape (m,)
        Trial id of each subset.
    size : ndarray of int, shape (m,)
        Points removed or added in each subset (kept for the per-trial
        output; the metrics do not weight by it).
    theta_true : ndarray, shape (m, p)
        Solver parameters θ*.
    utility_true : ndarray, shape (m,)
        Test utility of θ*.
    theta_hat : ndarray, shape (m, p), or None
        Predicted parameters; None for a method that predicts only the
        utility (Datamodel, UtlLearn), whose distance is then NaN.
    utility_hat : ndarray, shape (m,)
        Predicted test utility.

    Returns
    -------
    dict
        ``trials`` (t,) the sorted trial ids; ``distance``, ``nrmse``,
        ``spearman`` (t,) per trial (distance: mean over the trial's
        subsets); ``{metric}_mean`` and ``{metric}_std`` floats over trials.
        A mean is NaN when any trial's value is NaN, so an undefined
        Spearman's ρ in one trial is reported rather than averaged away.
    """
    trial = np.asarray(trial)
    size = np.asarray(size)
    utility_true = np.asarray(utility_true, dtype=np.float64)
    utility_hat = np.asarray(utility_hat, dtype=np.float64)
    m = len(trial)
    for name, value in (
        ("size", size),
        ("utility_true", utility_true),
        ("utility_hat", utility_hat),
    ):
        if np.shape(value) != (m,):
            raise ValueError(f"{name} must have shape ({m},) like trial, got {np.shape(value)}")
    if np.shape(theta_true)[0] != m:
        raise ValueError(
            f"theta_true must have {m} rows like trial, got shape {np.shape(theta_true)}"
        )

    distances = (
        parameter_distance(theta_hat, theta_true) if theta_hat is not None else np.full(m, np.nan)
    )
    trials = np.unique(trial)
    per_trial = {"distance": [], "nrmse": [], "spearman": []}
    for t in trials:
        rows = trial == t
        per_trial["distance"].append(float(distances[rows].mean()))
        per_trial["nrmse"].append(nrmse(utility_hat[rows], utility_true[rows]))
        per_trial["spearman"].append(spearman(utility_hat[rows], utility_true[rows]))

    out: dict[str, np.ndarray | float] = {"trials": trials}
    for name, values in per_trial.items():
        values = np.asarray(values)
        out[name] = values
        out[f"{name}_mean"] = float(np.mean(values))
        out[f"{name}_std"] = float(np.std(values))
    return out


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Compute the expected calibration error with equal-width confidence bins.

    Bin b (b = 1..M) contains the points whose confidence lies in ((b−1)/M, b/M];
    a confidence of exactly 0 falls into the first bin.

    Parameters
    ----------
    probs : ndarray, shape (n, K)
        Predicted class probabilities; each row should sum to 1.
    y : ndarray of int, shape (n,)
        True class indices 0..K-1.
    n_bins : int
        Number of bins M.

    Returns
    -------
    float
        Σ_b (|B_b| / n) · |accuracy(B_b) − mean confidence(B_b)|.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    if probs.ndim != 2 or y.shape != (probs.shape[0],):
        raise ValueError(
            f"probs must have shape (n, K) and y shape (n,), got {probs.shape} and {y.shape}"
        )
    if len(y) == 0:
        raise ValueError("cannot compute the calibration error of 0 points")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("probs must be finite probabilities in [0, 1]")

    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    # The bin index is the number of inner edges b/M strictly below c. Edges are
    # computed as b/M, not c·M, so that c = 0.7 with M = 10 lands in (0.6, 0.7]
    # although 0.7 · 10 rounds to 7.000000000000001 in binary floating point.
    inner_edges = np.arange(1, n_bins) / n_bins
    bins = np.searchsorted(inner_edges, confidence, side="left")
    accuracy_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    # |Σ_{i∈B}(acc_i − conf_i)| / n equals (|B|/n)·|acc(B) − conf(B)|, and empty bins add 0.
    return float(np.abs(accuracy_sum - confidence_sum).sum() / len(y))
