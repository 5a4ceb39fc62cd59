"""Datamodel baseline: ridge regression from the subset indicator to the test utility.

A datamodel (Ilyas et al., 2022) predicts an outcome of training on S as a
linear function of the indicator vector s ∈ {0, 1}ⁿ of S over the training
points:

    û(S) = b + Σᵢ wᵢ sᵢ,

fit by ridge regression, minimising Σ (u − b − w·s)² + α‖w‖² (the intercept
b is not penalised). Here the outcome is the test utility (mean test loss of
A(S)) and the training examples are the permutation samples: every prefix of
every sampled permutation is one example, whose utility is that of the
sampled θ. Prefixes lacking a class carry θ = 0, so their utility is that of
θ = 0, as for every other estimator.

A datamodel has one weight per training point and none for points it never
saw, so it answers deletion questions only. For a subgroup dataset the
weights cover the permuted subgroup, and the fixed rest must stay in every
subset it predicts.

Fitting without the design matrix
---------------------------------
The prefix indicators of one permutation π are nested, so the normal
equations have closed forms in the position posₜ(a) of point a in
permutation t (0-based, m points per permutation):

    Σ_examples s_a s_b = Σₜ (m − max(posₜ(a), posₜ(b))),
    Σ_examples s_a u   = Σₜ Σ_{i ≥ posₜ(a)} uₜᵢ,

so fitting costs O(T m²) time and O(m²) memory instead of forming the
(T·m) × m design matrix. Predictions for all prefixes of a permutation are
one cumulative sum of the weights in permutation order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..io import Dataset
from ..models import BaseModel

logger = logging.getLogger(__name__)

RELATIVE_ALPHAS = tuple(float(a) for a in np.logspace(-6, 4, 21))
"""Candidate penalties, as multiples of the mean diagonal of the centred Gram matrix.

Scaling by the Gram matrix's mean diagonal (the mean variance of an indicator
times the number of examples) keeps the grid meaningful for any number of
permutations and points. On spam with 300 points and 20 permutations the
held-out error was smallest near 7 times it.
"""

RELATIVE_ALPHA = 1.0
"""Penalty as a multiple of that mean diagonal, used when too few permutations exist to hold out."""

UTILITY_CHUNK = 2048
"""Sampled θ whose test utility is evaluated in one batch."""


@dataclass
class _NormalEquations:
    """Sufficient statistics of the prefix examples of some permutations."""

    gram: np.ndarray  # (m, m) Σ s sᵀ over the examples
    cross: np.ndarray  # (m,) Σ s u
    column_sum: np.ndarray  # (m,) Σ s
    utility_sum: float
    n_examples: int

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Return the centred Gram matrix and cross term, the feature mean and the utility mean."""
        mean_s = self.column_sum / self.n_examples
        mean_u = self.utility_sum / self.n_examples
        gram = self.gram - self.n_examples * np.outer(mean_s, mean_s)
        cross = self.cross - self.n_examples * mean_s * mean_u
        return gram, cross, mean_s, mean_u


def _positions(permutations: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Return posₜ(a) (T, m): the place of item ``items[a]`` in permutation t."""
    column = np.full(int(items.max()) + 1, -1, dtype=np.int64)
    column[items] = np.arange(len(items))
    order = column[permutations]  # (T, m) feature column of each permuted point
    positions = np.empty_like(order)
    rows = np.arange(len(permutations))[:, None]
    positions[rows, order] = np.arange(permutations.shape[1])[None, :]
    return positions


def _normal_equations(positions: np.ndarray, utilities: np.ndarray) -> _NormalEquations:
    T, m = positions.shape
    gram = np.zeros((m, m))
    cross = np.zeros(m)
    for t in range(T):
        gram += m - np.maximum.outer(positions[t], positions[t])
        # suffix[i] = Σ_{k ≥ i} u_tk, the utility total of the prefixes that contain position i.
        suffix = np.cumsum(utilities[t, ::-1])[::-1]
        cross += suffix[positions[t]]
    column_sum = (m - positions).sum(axis=0).astype(np.float64)
    return _NormalEquations(gram, cross, column_sum, float(utilities.sum()), T * m)


class Datamodel:
    """Ridge regression from the subset indicator over training points to the utility.

    Parameters
    ----------
    alpha : float or None
        Ridge penalty α. None chooses it from the candidates by the squared
        error on held-out whole permutations, then refits on all of them.
    alphas : sequence of float or None
        Candidate penalties when ``alpha`` is None. None uses
        :data:`RELATIVE_ALPHAS` times the mean diagonal of the centred Gram
        matrix of the permutations that the candidates are fit on.
    val_fraction : float
        Fraction of the permutations held out to choose α.

    Attributes
    ----------
    coef_ : ndarray, shape (n,)
        Weight wᵢ of every training point (0 for fixed points).
    intercept_ : float
        b.
    alpha_ : float
        The penalty used.
    alphas_ : tuple of float
        The candidate penalties tried (empty if α was given).
    items_ : ndarray of int
        The training points with a weight (those the permutations order).
    fixed_ : ndarray of int
        Training points present in every example.
    validation_mse_ : dict of float to float
        Held-out mean squared error of each candidate α (empty if α was given).
    """

    def __init__(self, alpha: float | None = None, alphas=None, val_fraction: float = 0.2):
        if alpha is not None and not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        self.alpha = alpha
        self.alphas = None if alphas is None else tuple(float(a) for a in alphas)
        if self.alphas is not None and (not self.alphas or min(self.alphas) <= 0):
            raise ValueError(f"alphas must be positive and not empty, got {self.alphas}")
        self.val_fraction = float(val_fraction)

    def fit_prefixes(
        self,
        permutations: np.ndarray,
        utilities: np.ndarray,
        n_points: int,
        fixed: np.ndarray | None = None,
    ) -> Datamodel:
        """Fit on every prefix of every permutation.

        Parameters
        ----------
        permutations : ndarray of int, shape (T, m)
            Each row orders the same m training indices.
        utilities : ndarray, shape (T, m)
            ``utilities[t, i]`` is the utility of the prefix ``permutations[t, :i+1]``
            (plus the fixed points).
        n_points : int
            Training points n; masks passed to :meth:`predict` have n columns.
        fixed : ndarray of int, optional
            Training indices in every prefix (a subgroup dataset's rest).

        Returns
        -------
        Datamodel
            self, fitted.
        """
        permutations = np.asarray(permutations, dtype=np.int64)
        utilities = np.asarray(utilities, dtype=np.float64)
        if permutations.ndim != 2 or utilities.shape != permutations.shape:
            raise ValueError(
                "permutations and utilities must both have shape (T, m), "
                f"got {permutations.shape} and {utilities.shape}"
            )
        if not np.all(np.isfinite(utilities)):
            raise ValueError("utilities contain NaN or infinite values; check the sampled θ")
        items = np.sort(permutations[0])
        if not np.all(np.sort(permutations, axis=1) == items[None, :]):
            raise ValueError("every permutation must order the same training points")
        if len(np.unique(items)) != len(items) or items.min() < 0 or items.max() >= n_points:
            raise ValueError(
                f"permutations must contain distinct training indices 0..{n_points - 1}"
            )
        fixed = np.zeros(0, dtype=np.int64) if fixed is None else np.asarray(fixed, dtype=np.int64)
        if np.intersect1d(fixed, items).size:
            raise ValueError(
                "fixed points must not be permuted, but "
                f"{np.intersect1d(fixed, items).tolist()[:5]} are in both"
            )

        positions = _positions(permutations, items)
        T = len(permutations)
        n_val = int(round(self.val_fraction * T))
        if self.alpha is not None:
            alpha, scores = float(self.alpha), {}
        elif n_val < 1 or n_val >= T:
            gram = _normal_equations(positions, utilities).centred()[0]
            alpha, scores = RELATIVE_ALPHA * float(np.diag(gram).mean()), {}
            logger.warning(
                "datamodel: %d permutation(s) are too few to hold out a fraction %.2f; "
                "using alpha = %g",
                T,
                self.val_fraction,
                alpha,
            )
        else:
            alpha, scores = self._choose_alpha(
                positions[: T - n_val],
                utilities[: T - n_val],
                positions[T - n_val :],
                utilities[T - n_val :],
            )

        weights, intercept = _solve_ridge(_normal_equations(positions, utilities), alpha)
        self.items_ = items
        self.fixed_ = fixed
        self.n_points_ = int(n_points)
        self.alpha_ = alpha
        self.alphas_ = tuple(scores)
        self.validation_mse_ = scores
        self.coef_ = np.zeros(n_points)
        self.coef_[items] = weights
        self.intercept_ = intercept
        logger.info(
            "datamodel: fit on %d prefixes of %d permutations with alpha = %g",
            T * permutations.shape[1],
            T,
            alpha,
        )
        return self

    def _choose_alpha(self, pos_fit, u_fit, pos_val, u_val) -> tuple[float, dict[float, float]]:
        gram, cross, mean_s, mean_u = _normal_equations(pos_fit, u_fit).centred()
        # One eigendecomposition serves every α: w(α) = V diag(1/(λ+α)) Vᵀ c.
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        projected = eigenvectors.T @ cross
        # order[t, k] is the feature column of the point at position k of permutation t.
        order = np.argsort(pos_val, axis=1)
        if self.alphas is None:
            candidates = tuple(factor * float(np.diag(gram).mean()) for factor in RELATIVE_ALPHAS)
        else:
            candidates = self.alphas
        scores = {}
        for alpha in candidates:
            weights = eigenvectors @ (projected / (eigenvalues + alpha))
            intercept = mean_u - mean_s @ weights
            predicted = intercept + np.cumsum(weights[order], axis=1)
            scores[alpha] = float(np.mean((predicted - u_val) ** 2))
        best = min(scores, key=scores.get)
        if best in (min(candidates), max(candidates)):
            logger.warning(
                "datamodel: the chosen alpha %g is at the edge of the candidates %g..%g; "
                "pass a wider 'alphas' range",
                best,
                min(candidates),
                max(candidates),
            )
        return best, scores

    def predict(self, masks: np.ndarray) -> np.ndarray:
        """Predict the utility of subsets of the training points.

        Parameters
        ----------
        masks : ndarray of bool, shape (B, n)
            Subsets over the n training points; fixed points must be present.

        Returns
        -------
        ndarray, shape (B,)
            b + w·s for every subset.
        """
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != self.n_points_:
            raise ValueError(
                f"masks must have shape (B, {self.n_points_}) over the training points, "
                f"got {masks.shape}"
            )
        if len(self.fixed_) and not masks[:, self.fixed_].all():
            missing = int((~masks[:, self.fixed_]).sum())
            raise ValueError(
                f"{missing} fixed training point(s) are absent from the masks, but the datamodel "
                "only saw subsets that contain all of them; remove points of the subgroup only"
            )
        return self.intercept_ + masks.astype(np.float64) @ self.coef_


def _solve_ridge(equations: _NormalEquations, alpha: float) -> tuple[np.ndarray, float]:
    gram, cross, mean_s, mean_u = equations.centred()
    weights = np.linalg.solve(gram + alpha * np.eye(len(cross)), cross)
    return weights, float(mean_u - mean_s @ weights)


def sample_utilities(
    model: BaseModel, theta: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> np.ndarray:
    """Compute the test utility of every sampled θ.

    Parameters
    ----------
    model : BaseModel
        The base model.
    theta : ndarray, shape (T, m, p)
        Sampled parameters (θ = 0 for one-class prefixes).
    X_test, y_test : ndarray, shapes (n_test, d) and (n_test,)
        Test split.

    Returns
    -------
    ndarray, shape (T, m)
        Mean test loss of each θ.
    """
    T, m, p = theta.shape
    flat = theta.reshape(T * m, p)
    out = np.empty(T * m)
    for start in range(0, T * m, UTILITY_CHUNK):
        stop = min(start + UTILITY_CHUNK, T * m)
        out[start:stop] = model.numpy_eval("utility", flat[start:stop], X_test, y_test)
    return out.reshape(T, m)


def datamodel_predictor(
    model: BaseModel,
    dataset: Dataset,
    samples: dict[str, np.ndarray],
    alpha: float | None = None,
):
    """Fit the Datamodel baseline on permutation samples and return it as an evaluation predictor.

    Parameters
    ----------
    model : BaseModel
        The base model that produced the samples; it computes their test utility.
    dataset : Dataset
        Supplies the test split and the number of training points n.
    samples : dict
        As returned by :func:`modelpred.sampling.read_samples`: ``permutations``
        (T, m), ``theta`` (T, m, p) and ``fixed``.
    alpha : float or None
        Ridge penalty; None chooses it on held-out permutations.

    Returns
    -------
    callable
        ``predict(X_all (N, d), y_all (N,), masks (B, N) bool) -> {"theta": None, "utility": (B,)}``
        over the N = n_train + n_pool stacked points. It raises ValueError
        for a mask that contains a pool point. Its ``datamodel`` attribute is
        the fitted :class:`Datamodel`.
    """
    n_train = len(dataset.train)
    utilities = sample_utilities(model, samples["theta"], dataset.test.X, dataset.test.y)
    fixed = samples.get("fixed")
    datamodel = Datamodel(alpha=alpha).fit_prefixes(
        samples["permutations"], utilities, n_train, fixed=fixed
    )

    def predict(X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray | None]:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] < n_train:
            raise ValueError(
                f"masks must have shape (B, N) with N ≥ n_train = {n_train}, got {masks.shape}"
            )
        if masks[:, n_train:].any():
            raise ValueError(
                f"{int(masks[:, n_train:].any(axis=1).sum())} subset(s) contain pool points, "
                "but a datamodel has weights only for the training points it was fit on; "
                "use it for deletion scenarios only"
            )
        return {"theta": None, "utility": datamodel.predict(masks[:, :n_train])}

    predict.datamodel = datamodel
    return predict
