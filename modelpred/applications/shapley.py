"""Permutation-sampling Shapley values of training points.

The Shapley value of point i under a utility U is the average, over uniformly
random orderings π of the n points, of its marginal contribution

    φᵢ = E_π [ U(P_i^π ∪ {i}) − U(P_i^π) ],

where P_i^π holds the points before i in π. Each permutation yields the
marginal contributions of all n points from the utilities of its n + 1
prefixes (the empty set included), so an estimate with T permutations needs
T (n + 1) utilities: the solver retrains every prefix, ModelPred predicts θ of
every prefix from one prefix sum of DeepSets embeddings, and UtlLearn predicts
the utility directly.

The utility is the negative mean test loss of the trained model by default
(``accuracy`` selects test accuracy). An empty or one-class prefix uses
θ = 0, so U(∅) is the utility of θ = 0 for every estimator, and each
estimate's values sum exactly to its own U(D) − U(∅) (efficiency).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from ..models import BaseModel

UTILITIES = ("neg_loss", "accuracy")


def theta_utilities(model: BaseModel, theta: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, utility: str = "neg_loss") -> np.ndarray:
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
    if utility not in UTILITIES:
        raise ValueError(f"utility must be one of {UTILITIES}, got {utility!r}")
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


def shapley_from_prefix_utilities(permutations: np.ndarray, prefix_utilities: np.ndarray, empty_utility: float) -> np.ndarray:
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
    permutations = np.asarray(permutations)
    T, n = permutations.shape
    previous = np.concatenate([np.full((T, 1), empty_utility), prefix_utilities[:, :-1]], axis=1)
    marginal = prefix_utilities - previous  # (T, n), column i belongs to point permutations[t, i]
    values = np.zeros(n)
    np.add.at(values, permutations.ravel(), marginal.ravel())
    return values / T


def empty_utility(model: BaseModel, X_test: np.ndarray, y_test: np.ndarray, utility: str = "neg_loss") -> float:
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
    return shapley_from_prefix_utilities(permutations, u, empty_utility(model, X_test, y_test, utility))


def exact_shapley(n: int, utility_of: Callable[[tuple[int, ...]], float]) -> np.ndarray:
    """Return exact Shapley values by enumerating all 2ⁿ subsets (small n only).

    φᵢ = Σ_{S ⊆ N∖{i}} |S|! (n − |S| − 1)! / n! · (U(S ∪ {i}) − U(S)).
    """
    if n > 16:
        raise ValueError(f"exact enumeration needs 2^n utilities; n = {n} is too large (at most 16)")
    cache = {subset: utility_of(subset) for size in range(n + 1) for subset in itertools.combinations(range(n), size)}
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                values[i] += weight * (cache[tuple(sorted((*subset, i)))] - cache[subset])
    return values
