"""Influence-function baseline: first-order group effects of removing or adding points.

Around the optimum θ* of a start set S₀, with H = ∇²L(θ*; S₀) the exact
Hessian of the summed training objective L(θ; S) = Σ_{i∈S} ℓᵢ(θ) + (λ/2)‖w‖²,
the first-order (influence-function) estimate of the optimum on a changed
set is

    deletion of R:  θ̂ = θ* + H⁻¹ Σ_{i∈R} ∇ℓᵢ(θ*),
    addition of A:  θ̂ = θ* − H⁻¹ Σ_{j∈A} ∇ℓⱼ(θ*),

i.e. the group effect is the sum of the single-point leave-one-out (or
add-one) influences. Both cases are θ̂ = θ* − H⁻¹ Σⱼ Δⱼ ∇ℓⱼ(θ*) with the
signed indicator Δ = 1[j ∈ S] − 1[j ∈ S₀], so all subsets are one product
``(masks − start) @ G`` with the per-point gradient matrix G (N, p).

H is formed exactly, as the autograd Jacobian of the base model's
closed-form gradient. For the squared-hinge SVM that is the generalised
Hessian: the hinge's curvature is taken as 0 at points exactly on the margin.
The multinomial logistic objective does not change when one constant is
added to every class's intercept, and the intercept is not penalised, so H is
singular along that direction. H⁻¹ is therefore the Moore–Penrose
pseudo-inverse (eigenvalues below ``rcond`` times the largest are dropped).
Every per-point gradient is orthogonal to that null direction, because the
intercept gradients of one point sum to 0 over classes, so the pseudo-inverse
gives the exact minimum-norm solution of H δ = Σ Δⱼ ∇ℓⱼ and keeps the
intercepts centred.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..io import Dataset
from ..models import BaseModel

logger = logging.getLogger(__name__)

DEFAULT_RCOND = 1e-10
"""Eigenvalues of H below this fraction of the largest one count as zero."""


def objective_hessian(
    model: BaseModel, theta: np.ndarray, X: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Compute the exact Hessian of the summed objective on all of (X, y).

    Parameters
    ----------
    model : BaseModel
        The base model whose objective L(θ; S) is differentiated.
    theta : ndarray, shape (p,)
        Point of evaluation.
    X, y : ndarray, shapes (n, d) and (n,)
        The points of S.

    Returns
    -------
    ndarray, shape (p, p)
        ∇²L(θ; S), symmetrised to remove autograd round-off.
    """
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.int64)
    mask = torch.ones(1, len(yt), dtype=torch.float64)

    def gradient(th: torch.Tensor) -> torch.Tensor:
        return model.gradient(th[None], Xt, yt, mask)[0]

    theta_t = torch.as_tensor(theta, dtype=torch.float64)
    hessian = torch.autograd.functional.jacobian(gradient, theta_t, vectorize=True).numpy()
    return 0.5 * (hessian + hessian.T)


def point_gradients(
    model: BaseModel, theta: np.ndarray, X: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Compute the gradient of every point's loss ∇ℓᵢ(θ), without the penalty.

    Parameters
    ----------
    model : BaseModel
        The base model.
    theta : ndarray, shape (p,)
        Point of evaluation.
    X, y : ndarray, shapes (n, d) and (n,)
        The points.

    Returns
    -------
    ndarray, shape (n, p)
        Row i is ∇_θ ℓ(θ; xᵢ, yᵢ) in the flat parameter layout.
    """
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.int64)
    theta_t = torch.as_tensor(theta, dtype=torch.float64)[None]
    with torch.no_grad():
        dloss_dz = model.point_loss_grads(theta_t, Xt, yt)[0]  # (n, R)
    X1 = torch.cat([Xt, torch.ones_like(Xt[:, :1])], dim=1)  # (n, d+1)
    # θ is the row-major flattening of an R×(d+1) matrix, and z_ir = W_r·x̃_i.
    return torch.einsum("nr,nd->nrd", dloss_dz, X1).reshape(len(yt), -1).numpy()


def pseudo_inverse(hessian: np.ndarray, rcond: float = DEFAULT_RCOND) -> tuple[np.ndarray, int]:
    """Invert a symmetric positive semi-definite matrix on its range.

    Returns
    -------
    inverse : ndarray, shape (p, p)
        The Moore–Penrose pseudo-inverse.
    rank_deficiency : int
        How many eigen-directions were dropped as zero.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    keep = eigenvalues > rcond * max(float(eigenvalues.max()), 0.0)
    inverse = (eigenvectors[:, keep] / eigenvalues[keep]) @ eigenvectors[:, keep].T
    return inverse, int((~keep).sum())


class InfluenceFunction:
    """First-order group influence around the optimum of one start set.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A.
    X, y : ndarray, shapes (N, d) and (N,)
        Every point a subset may hold (train and pool stacked).
    start_mask : ndarray of bool, shape (N,)
        The start set S₀ whose optimum the expansion is taken around.
    rcond : float
        Relative eigenvalue cut-off of the Hessian's pseudo-inverse.

    Attributes
    ----------
    theta_start : ndarray, shape (p,)
        θ* = A(S₀).
    hessian : ndarray, shape (p, p)
        ∇²L(θ*; S₀).
    hessian_pinv : ndarray, shape (p, p)
        Its pseudo-inverse.
    grads : ndarray, shape (N, p)
        ∇ℓᵢ(θ*) for every point.
    rank_deficiency : int
        Eigen-directions of H dropped as zero (1 for multinomial LR).
    """

    def __init__(
        self,
        model: BaseModel,
        X: np.ndarray,
        y: np.ndarray,
        start_mask: np.ndarray,
        rcond: float = DEFAULT_RCOND,
    ):
        start_mask = np.asarray(start_mask, dtype=bool)
        if start_mask.shape != (len(y),):
            raise ValueError(
                f"start_mask must have shape ({len(y)},) like y, got {start_mask.shape}"
            )
        X_start, y_start = X[start_mask], y[start_mask]
        if not model.has_all_classes(y_start):
            raise ValueError(
                f"the start set of {int(start_mask.sum())} points lacks a class, so A(S₀) is the "
                "placeholder θ = 0 rather than an optimum and influence functions do not apply; "
                "choose a start set with every class"
            )
        self.model = model
        self.start_mask = start_mask
        self.theta_start = model.fit(X_start, y_start)
        self.hessian = objective_hessian(model, self.theta_start, X_start, y_start)
        self.hessian_pinv, self.rank_deficiency = pseudo_inverse(self.hessian, rcond)
        self.grads = point_gradients(model, self.theta_start, X, y)
        if self.rank_deficiency:
            logger.info(
                "Hessian of %d parameters has %d zero eigen-direction(s); using its pseudo-inverse",
                model.n_params,
                self.rank_deficiency,
            )

    def predict(self, masks: np.ndarray) -> np.ndarray:
        """Predict θ for subsets that differ from the start set.

        Parameters
        ----------
        masks : ndarray of bool, shape (m, N)
            Subsets over the same N points as the constructor's X.

        Returns
        -------
        ndarray, shape (m, p)
            θ̂ = θ* − H⁺ Σⱼ (1[j∈S] − 1[j∈S₀]) ∇ℓⱼ(θ*) for every subset.
        """
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != len(self.start_mask):
            raise ValueError(
                f"masks must have shape (m, {len(self.start_mask)}), got {masks.shape}"
            )
        change = masks.astype(np.float64) - self.start_mask.astype(np.float64)  # (m, N)
        return self.theta_start[None, :] - (change @ self.grads) @ self.hessian_pinv


def influence_predictor(
    model: BaseModel, dataset: Dataset, start_mask: np.ndarray, rcond: float = DEFAULT_RCOND
):
    """Build the influence-function baseline as an evaluation predictor.

    The expansion points (θ*, H, per-point gradients) are computed here, once
    for every distinct start set, so timing this call plus the predictor's
    calls gives the method's full cost.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A.
    dataset : Dataset
        Its train and pool points, stacked in that order, are the N columns
        of every mask.
    start_mask : ndarray of bool, shape (N,) or (m, N)
        One start set for all subsets, or the start set of each of the m
        subsets the predictor will be called with (one per trial, repeated).
    rcond : float
        Relative eigenvalue cut-off of the Hessian's pseudo-inverse.

    Returns
    -------
    callable
        ``predict(X_all (N, d), y_all (N,), masks (m, N) bool)`` returning
        ``{"theta": (m, p), "utility": None}``; the caller computes the utility from θ.
    """
    X_all = np.concatenate([dataset.train.X, dataset.pool.X])
    y_all = np.concatenate([dataset.train.y, dataset.pool.y])
    start_mask = np.asarray(start_mask, dtype=bool)
    if start_mask.ndim == 1:
        start_mask = start_mask[None, :]
    if start_mask.ndim != 2 or start_mask.shape[1] != len(y_all):
        raise ValueError(
            f"start_mask must have shape ({len(y_all)},) or (m, {len(y_all)}) over train + pool, "
            f"got {start_mask.shape}"
        )
    starts, row_start = np.unique(start_mask, axis=0, return_inverse=True)
    row_start = row_start.reshape(-1)
    expansions = [InfluenceFunction(model, X_all, y_all, start, rcond) for start in starts]
    logger.info("influence function: expanded around %d start set(s)", len(expansions))

    def predict(X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray | None]:
        if (
            np.shape(X) != X_all.shape
            or not np.array_equal(X, X_all)
            or not np.array_equal(y, y_all)
        ):
            raise ValueError(
                "the influence predictor was built for the stacked train + pool points of its "
                "dataset; call it with those points, in that order"
            )
        masks = np.asarray(masks, dtype=bool)
        if len(starts) == 1:
            start_index = np.zeros(len(masks), dtype=np.int64)
        elif len(masks) == len(row_start):
            start_index = row_start
        else:
            raise ValueError(
                f"the predictor was built with one start set per subset ({len(row_start)} rows) "
                f"but called with {len(masks)} masks; pass the masks the start sets belong to"
            )
        theta = np.zeros((len(masks), model.n_params))
        for k, expansion in enumerate(expansions):
            rows = start_index == k
            if rows.any():
                theta[rows] = expansion.predict(masks[rows])
        return {"theta": theta, "utility": None}

    return predict
