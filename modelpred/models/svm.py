"""Squared-hinge linear SVM solved by LIBLINEAR (base model ``svm``).

Minimises Σᵢ max(0, 1 − sᵢ wᵀx̃ᵢ)² + (λ/2)‖w‖² over w ∈ R^{d+1}, where
x̃ = [x, 1] and sᵢ = ±1, i.e. LIBLINEAR's ``-s 2 -B 1`` with C = 1/λ. The bias
is a constant feature and is penalised, as in LIBLINEAR and scikit-learn's
``LinearSVC``. Binary problems only.

LIBLINEAR orders labels by their first appearance, so the raw weight vector
scores whichever class the subset starts with. θ is always stored for class 1
against class 0, and warm starts are converted to LIBLINEAR's orientation
before they are passed as its ``init_sol``.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch
from liblinear import liblinear as _liblinear
from torch import Tensor

from .base import BaseModel, PrefixFits, class_counts


def _dense_problem(X: np.ndarray, labels: np.ndarray) -> _liblinear.problem:
    """Build a LIBLINEAR problem with bias feature 1 from a dense matrix in one pass.

    liblinear-official converts dense input row by row in Python, which costs
    more than the solve itself for the small problems of permutation sampling.
    Here every row is d feature nodes, the bias node (index d + 1, value 1)
    and the terminator, laid out in one array, which is LIBLINEAR's layout.
    """
    m, d = X.shape
    node = _liblinear.feature_node
    space = np.empty((m, d + 2), dtype=node)
    space["index"][:, :d] = np.arange(1, d + 1)
    space["value"][:, :d] = X
    space["index"][:, d] = d + 1
    space["value"][:, d] = 1.0
    space["index"][:, d + 1] = -1
    space["value"][:, d + 1] = 0.0
    prob = _liblinear.problem.__new__(_liblinear.problem)
    prob.x_space = space  # keeps the nodes alive as long as the problem
    prob.l, prob.n, prob.bias = m, d + 1, 1.0
    prob.y = (ctypes.c_double * m)()
    np.ctypeslib.as_array(prob.y, (m,))[:] = labels
    prob.x = (ctypes.POINTER(node) * m)()
    pointers = np.ctypeslib.as_array(ctypes.cast(prob.x, ctypes.POINTER(ctypes.c_uint64)), (m,))
    pointers[:] = space.ctypes.data + np.arange(m, dtype=np.uint64) * (d + 2) * ctypes.sizeof(node)
    return prob


class LinearSVM(BaseModel):
    """Base model ``svm``.

    Parameters
    ----------
    n_features, n_classes, lam
        See :class:`~modelpred.models.base.BaseModel`; ``n_classes`` must be 2.
    eps : float
        LIBLINEAR's ``-e`` stopping tolerance (relative gradient norm).
    """

    name = "svm"
    penalize_intercept = True
    max_classes = 2

    def __init__(self, n_features: int, n_classes: int = 2, lam: float = 1.0, eps: float = 1e-10):
        super().__init__(n_features, n_classes, lam)
        self.eps = float(eps)
        _liblinear.liblinear.set_print_string_function(_liblinear.ctypes_print_null)

    # ---------------------------------------------------------- torch functions
    def point_losses(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        z = self.decision_function(theta, X)[..., 0]
        sign = 2.0 * y.to(z.dtype) - 1.0
        return torch.clamp(1.0 - sign * z, min=0.0) ** 2

    def point_loss_grads(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        z = self.decision_function(theta, X)[..., 0]
        sign = 2.0 * y.to(z.dtype) - 1.0
        return (-2.0 * sign * torch.clamp(1.0 - sign * z, min=0.0))[..., None]

    def predict_proba(self, theta: Tensor, X: Tensor) -> Tensor:
        # NOTE: an SVM has no probabilities; the logistic function of the
        # decision value serves as a score in [0, 1] and is not calibrated.
        p1 = torch.sigmoid(self.decision_function(theta, X)[..., 0])
        return torch.stack([1 - p1, p1], dim=-1)

    # ------------------------------------------------------------------ solver
    def _train(self, X: np.ndarray, y: np.ndarray, theta0: np.ndarray | None) -> np.ndarray:
        """Solve one problem with LIBLINEAR and return θ for class 1 against class 0."""
        first_is_one = y[0] == 1
        prob = _dense_problem(X, np.where(y == 1, 1.0, -1.0))
        param = _liblinear.parameter(f"-s 2 -B 1 -c {1.0 / self.lam!r} -e {self.eps!r} -q")
        if theta0 is not None:
            oriented = theta0 if first_is_one else -theta0
            param.init_sol = (ctypes.c_double * self.n_params)(*oriented)
        model = _liblinear.toPyModel(_liblinear.liblinear.train(prob, param))
        raw = np.array(model.w[: self.n_params], dtype=np.float64)
        # model.label[0] is the class LIBLINEAR treats as positive.
        return raw if model.label[0] == 1 else -raw

    def fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, y = self._check_data(X, y)
        if not self.has_all_classes(y):
            return np.zeros(self.n_params)
        return self._train(X, y, None)

    def fit_prefixes(self, X, y, permutations, fixed=None, progress=None) -> PrefixFits:
        X, y = self._check_data(X, y)
        permutations = np.asarray(permutations, dtype=np.int64)
        B, m = permutations.shape
        fixed = np.asarray(fixed if fixed is not None else [], dtype=np.int64)
        one_class = (class_counts(y, permutations, self.n_classes, fixed) == 0).any(axis=-1)
        theta = np.zeros((B, m, self.n_params))
        for i in range(m):
            for b in range(B):
                if one_class[b, i]:
                    continue
                rows = np.concatenate([fixed, permutations[b, : i + 1]])
                warm = theta[b, i - 1] if i > 0 and not one_class[b, i - 1] else None
                theta[b, i] = self._train(X[rows], y[rows], warm)
            if progress is not None:
                progress(i + 1)
        kkt = self._kkt_residuals(X, y, permutations, fixed, theta)
        kkt[one_class] = 0.0
        # LIBLINEAR stops on a relative criterion; a fit counts as converged
        # when its absolute KKT residual is small too.
        converged = one_class | (kkt <= 1e-5)
        return PrefixFits(theta, converged, one_class, kkt)

    def _kkt_residuals(self, X, y, permutations, fixed, theta) -> np.ndarray:
        B, m = permutations.shape
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        out = np.zeros((B, m))
        base = torch.zeros(len(y), dtype=torch.float64)
        base[torch.from_numpy(fixed)] = 1.0
        for b in range(B):
            order = torch.from_numpy(permutations[b])
            masks = base.repeat(m, 1)
            masks[:, order] = torch.tril(torch.ones(m, m, dtype=torch.float64)) + masks[:, order]
            with torch.no_grad():
                grad = self.gradient(torch.from_numpy(theta[b]), Xt, yt, masks)
            out[b] = grad.norm(dim=1).numpy()
        return out
