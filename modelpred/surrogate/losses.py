"""Per-subset training losses of the surrogate, batched over subsets given as masks.

For a subset S with solver output θ_S and prediction θ̂ = Â(S) the loss is

    ‖θ_S − θ̂‖ + w_kkt · ‖∇L(θ̂; S)‖ + w_util · |U(S; θ̂) − U(S; θ_S)|,

where L(θ; S) = Σ_{i∈S} ℓ(θ; xᵢ, yᵢ) + (λ/2)‖w‖² is the base model's training
objective (``model.gradient`` gives ∇L in closed form) and U(S; θ) is the
mean training loss on S (``model.train_loss``). The KKT term is the
stationarity condition ∇L(θ*_S; S) = 0 of the convex problem, so it needs no
label and regularises Â between sampled subsets.

Subsets lacking a class have θ_S = 0 by convention, not by optimisation, so
their KKT term is dropped (the ``solved`` weight below is 0 for them).

The UtlLearn surrogate outputs the test utility u = U_test(A(S)) directly and
trains on |u_S − û|.

All subsets of a batch share the point set X, so every term is one masked
tensor operation over (B, n). :func:`prefix_masks` builds the masks of all
prefixes of a batch of permutations, which are lower-triangular in the
permuted order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..models.base import BaseModel


def permutation_ranks(permutations: Tensor, n_points: int, fixed: Tensor | None = None) -> Tensor:
    """Return each point's position in each permutation, shape (T, n).

    Points absent from a permutation get rank m (in no prefix) and fixed
    points get rank -1 (in every prefix), so prefix i of permutation t is the
    set of points whose rank is at most i.
    """
    T, m = permutations.shape
    ranks = torch.full((T, n_points), m, dtype=torch.long, device=permutations.device)
    positions = torch.arange(m, device=permutations.device).expand(T, m)
    ranks.scatter_(1, permutations.long(), positions)
    if fixed is not None and len(fixed):
        ranks[:, fixed.long()] = -1
    return ranks


def prefix_masks(
    permutations: Tensor, n_points: int, fixed: Tensor | None = None, dtype=torch.float32
) -> Tensor:
    """Return the membership masks of all prefixes, shape (T, m, n).

    ``mask[t, i, k]`` is 1 when point k is fixed or among the first ``i + 1``
    points of permutation t.
    """
    ranks = permutation_ranks(permutations, n_points, fixed)  # (T, n)
    sizes = torch.arange(permutations.shape[1], device=permutations.device)  # (m,)
    return (ranks[:, None, :] <= sizes[None, :, None]).to(dtype)  # (T, m, n)


def parameter_loss(theta_pred: Tensor, theta_true: Tensor) -> Tensor:
    """Return ‖θ_S − θ̂‖ per subset, shape (B,), for θ of shape (B, p)."""
    return (theta_true - theta_pred).norm(dim=-1)


def kkt_loss(model: BaseModel, theta_pred: Tensor, X: Tensor, y: Tensor, masks: Tensor) -> Tensor:
    """Return ‖∇L(θ̂_b; S_b)‖ per subset, shape (B,).

    Parameters
    ----------
    model : BaseModel
        Supplies the closed-form gradient of its training objective.
    theta_pred : Tensor, shape (B, p)
    X : Tensor, shape (n, d)
    y : Tensor of int, shape (n,)
    masks : Tensor, shape (B, n)
        Membership of each point in each subset.
    """
    return model.gradient(theta_pred, X, y, masks).norm(dim=-1)


def utility_loss(
    model: BaseModel,
    theta_pred: Tensor,
    X: Tensor,
    y: Tensor,
    masks: Tensor,
    train_loss_true: Tensor,
) -> Tensor:
    """Return |U(S_b; θ̂_b) − U(S_b; θ_S)| per subset, shape (B,).

    ``train_loss_true`` (B,) is U(S_b; θ_S), the mean training loss of the
    solver's θ on its subset. It does not depend on the network, so callers
    compute it once with ``model.train_loss``.
    """
    return (model.train_loss(theta_pred, X, y, masks) - train_loss_true).abs()


@dataclass
class LossTerms:
    """The terms of the surrogate loss per subset, each of shape (B,).

    ``kkt`` is already zero where the subset has no solved optimum
    (one-class subsets) and for methods that do not use it.
    """

    parameter: Tensor
    kkt: Tensor
    utility: Tensor

    def total(self, w_kkt: float, w_util: float) -> Tensor:
        """Return the weighted per-subset loss, shape (B,)."""
        return self.parameter + w_kkt * self.kkt + w_util * self.utility


def surrogate_loss_terms(
    model: BaseModel,
    prediction: Tensor,
    target: Tensor,
    X: Tensor,
    y: Tensor,
    masks: Tensor,
    solved: Tensor,
    train_loss_true: Tensor | None,
    w_kkt: float,
    w_util: float,
) -> LossTerms:
    """Return the loss terms of a batch of subsets.

    Parameters
    ----------
    model : BaseModel
    prediction : Tensor, shape (B, out)
        The network's θ̂ (out = p) or utility (out = 1).
    target : Tensor, shape (B, out)
        θ_S or the test utility of θ_S.
    X, y : Tensor, shapes (n, d) and (n,)
        The points that ``masks`` select from.
    masks : Tensor, shape (B, n)
    solved : Tensor of bool, shape (B,)
        False for subsets whose θ_S is the one-class convention θ = 0.
    train_loss_true : Tensor, shape (B,), optional
        U(S; θ_S); needed only when ``w_util > 0``.
    w_kkt, w_util : float
        Terms whose weight is 0 are not computed and come back as zeros.

    Returns
    -------
    LossTerms
    """
    zeros = prediction.new_zeros(prediction.shape[0])
    parameter = parameter_loss(prediction, target)
    kkt = zeros
    if w_kkt > 0:
        kkt = torch.where(solved, kkt_loss(model, prediction, X, y, masks), zeros)
    utility = zeros
    if w_util > 0:
        if train_loss_true is None:
            raise ValueError(
                "w_util > 0 needs train_loss_true, the training loss of the solver's θ per subset"
            )
        utility = utility_loss(model, prediction, X, y, masks, train_loss_true)
    return LossTerms(parameter, kkt, utility)
