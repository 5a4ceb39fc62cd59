"""The interface every base model (learning algorithm A) implements.

Parameter layout
----------------
For K classes and d features, θ is the row-major flattening of an R×(d+1)
matrix whose last column is the intercept, where R = 1 for two classes (the
row scores class 1 against class 0) and R = K otherwise. So a binary model
has p = d + 1 parameters and a K-class model p = K (d + 1).

Objective
---------
Following the reference code, the training objective on a subset S is the
*summed* loss plus an L2 penalty,

    L(θ; S) = Σ_{i∈S} ℓ(θ; xᵢ, yᵢ) + (λ/2) ‖w‖²,

which is scikit-learn's convention with C = 1/λ. Whether the intercept is in
``w`` depends on the model (logistic regression: no; LIBLINEAR's SVM: yes).

Batched torch functions
-----------------------
The surrogate's KKT and utility losses need L, ∇L and the per-point loss as
differentiable torch functions of θ for many subsets at once. Subsets are
given as a weight ``mask`` of shape (B, n) over the rows of ``X`` (1 for a
member, 0 otherwise), and ``theta`` has shape (B, p).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class PrefixFits:
    """Solutions on all prefixes of a batch of permutations.

    Attributes
    ----------
    theta : ndarray, shape (B, m, p)
        ``theta[b, i]`` is A trained on the fixed points plus the first
        ``i + 1`` points of permutation ``b``.
    converged : ndarray of bool, shape (B, m)
        Whether the solver met its tolerance (True for one-class prefixes,
        whose θ = 0 is set rather than solved).
    one_class : ndarray of bool, shape (B, m)
        Prefixes that lack a class and therefore get θ = 0.
    kkt_residual : ndarray, shape (B, m)
        ‖∇L(θ; S)‖ at the returned θ (0 for one-class prefixes).
    """

    theta: np.ndarray
    converged: np.ndarray
    one_class: np.ndarray
    kkt_residual: np.ndarray


class BaseModel(ABC):
    """A learning algorithm A: S ↦ θ, with its objective as torch functions.

    Parameters
    ----------
    n_features : int
        Feature dimension d.
    n_classes : int
        Number of classes K (labels are 0..K-1).
    lam : float
        L2 penalty λ of the summed-loss objective (scikit-learn's C = 1/λ).
    """

    name: str = ""
    penalize_intercept: bool = False
    max_classes: int | None = None

    def __init__(self, n_features: int, n_classes: int, lam: float = 1.0):
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        if self.max_classes is not None and n_classes > self.max_classes:
            raise ValueError(
                f"base model '{self.name}' supports at most {self.max_classes} classes, "
                f"got {n_classes}; "
                "use 'lr' for more classes"
            )
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam}")
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.lam = float(lam)

    # ------------------------------------------------------------------ layout
    @property
    def n_rows(self) -> int:
        """Rows R of the parameter matrix: 1 for two classes, K otherwise."""
        return 1 if self.n_classes == 2 else self.n_classes

    @property
    def n_params(self) -> int:
        """Length p of the flat θ."""
        return self.n_rows * (self.n_features + 1)

    @property
    def param_layout(self) -> str:
        """Human-readable description stored beside θ in HDF5 files."""
        return (
            f"row-major {self.n_rows}x{self.n_features + 1} matrix, last column the intercept; "
            + (
                "one row scoring class 1 against class 0"
                if self.n_rows == 1
                else "one row per class"
            )
        )

    def config(self) -> dict:
        """Return the constructor arguments, for provenance and reloading."""
        return {
            "name": self.name,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "lam": self.lam,
        }

    def _check_data(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}), got {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(
                f"labels must be class indices 0..{self.n_classes - 1}, got {y.min()}..{y.max()}"
            )
        return X, y

    # ------------------------------------------------------------- solvers
    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Train on (X, y) and return the flat θ of shape (p,).

        A set that lacks any of the K classes returns θ = 0, as the
        reference code does.
        """

    @abstractmethod
    def fit_prefixes(
        self,
        X: np.ndarray,
        y: np.ndarray,
        permutations: np.ndarray,
        fixed: np.ndarray | None = None,
        progress=None,
    ) -> PrefixFits:
        """Train on every prefix of each permutation, warm-starting along it.

        Parameters
        ----------
        X, y : ndarray, shapes (n, d) and (n,)
            The points that ``permutations`` and ``fixed`` index.
        permutations : ndarray of int, shape (B, m)
            Each row orders m distinct indices into ``X``.
        fixed : ndarray of int, optional
            Indices in every subset (a subgroup dataset's fixed part).
        progress : callable, optional
            Called with the number of prefix sizes finished so far.
        """

    # --------------------------------------------------- torch functions
    @abstractmethod
    def point_losses(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        """Return ℓ(θ_b; xᵢ, yᵢ) of shape (B, n) for θ (B, p), X (n, d), y (n,)."""

    @abstractmethod
    def point_loss_grads(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        """Return ∂ℓ/∂z of shape (B, n, R): the loss derivative per decision value."""

    def penalty_weights(self, theta: Tensor) -> Tensor:
        """Return the penalised part of θ (the intercept zeroed unless penalised)."""
        if self.penalize_intercept:
            return theta
        W = theta.reshape(*theta.shape[:-1], self.n_rows, self.n_features + 1)
        return torch.cat([W[..., :-1], torch.zeros_like(W[..., -1:])], dim=-1).reshape(theta.shape)

    def decision_function(self, theta: Tensor, X: Tensor) -> Tensor:
        """Return decision values of shape (B, n, R) for θ (B, p) and X (n, d)."""
        W = theta.reshape(theta.shape[0], self.n_rows, self.n_features + 1)
        return torch.einsum("nd,brd->bnr", X, W[..., :-1]) + W[:, None, :, -1]

    def objective(self, theta: Tensor, X: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        """Return L(θ_b; S_b) = Σᵢ mask_bi ℓ(θ_b; xᵢ, yᵢ) + (λ/2)‖w_b‖², shape (B,)."""
        losses = (mask * self.point_losses(theta, X, y)).sum(dim=1)
        return losses + 0.5 * self.lam * (self.penalty_weights(theta) ** 2).sum(dim=1)

    def gradient(self, theta: Tensor, X: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        """Return ∇_θ L(θ_b; S_b) in closed form, shape (B, p).

        Equal to autograd of :meth:`objective` but one batched product, so the
        KKT loss of many subsets costs a single pass over the points.
        """
        dz = mask[..., None] * self.point_loss_grads(theta, X, y)  # (B, n, R)
        X1 = torch.cat([X, torch.ones_like(X[:, :1])], dim=1)  # (n, d+1)
        grad = torch.einsum("bnr,nd->brd", dz, X1).reshape(theta.shape)
        return grad + self.lam * self.penalty_weights(theta)

    def train_loss(self, theta: Tensor, X: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        """Return the mean loss over each subset, shape (B,); 0 for an empty subset."""
        total = (mask * self.point_losses(theta, X, y)).sum(dim=1)
        return total / mask.sum(dim=1).clamp_min(1)

    def utility(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        """Return the test utility used throughout: the mean loss on (X, y), shape (B,)."""
        return self.point_losses(theta, X, y).mean(dim=1)

    @abstractmethod
    def predict_proba(self, theta: Tensor, X: Tensor) -> Tensor:
        """Return class probabilities (or scores in [0, 1]) of shape (B, n, K)."""

    def predict(self, theta: Tensor, X: Tensor) -> Tensor:
        """Return predicted class indices of shape (B, n)."""
        z = self.decision_function(theta, X)
        if self.n_rows == 1:
            return (z[..., 0] > 0).long()
        return z.argmax(dim=-1)

    def accuracy(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        """Return the fraction of correct predictions on (X, y), shape (B,)."""
        return (self.predict(theta, X) == y).to(theta.dtype).mean(dim=1)

    # ----------------------------------------------------------- helpers
    def has_all_classes(self, y: np.ndarray) -> bool:
        """Return whether the labels ``y`` contain every one of the K classes."""
        return len(np.unique(y)) == self.n_classes

    def numpy_eval(
        self, method: str, theta: np.ndarray, X: np.ndarray, *args: np.ndarray
    ) -> np.ndarray:
        """Call a torch method on float64 NumPy inputs; ``theta`` may be (p,) or (B, p)."""
        single = np.ndim(theta) == 1
        theta_t = torch.as_tensor(np.atleast_2d(theta), dtype=torch.float64)
        tensors = [torch.as_tensor(a) for a in (X, *args)]
        tensors[0] = tensors[0].to(torch.float64)
        with torch.no_grad():
            out = getattr(self, method)(theta_t, *tensors).numpy()
        return out[0] if single else out


def class_counts(
    y: np.ndarray, permutations: np.ndarray, n_classes: int, fixed: np.ndarray | None
) -> np.ndarray:
    """Return how many points of each class every prefix holds, shape (B, m, K)."""
    onehot = np.eye(n_classes, dtype=np.int64)[y[permutations]]  # (B, m, K)
    counts = np.cumsum(onehot, axis=1)
    if fixed is not None and len(fixed):
        counts += np.bincount(y[fixed], minlength=n_classes)
    return counts
