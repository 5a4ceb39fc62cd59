"""L2-penalised logistic regression, binary and multinomial (base model ``lr``).

Minimises Σᵢ ℓ(θ; xᵢ, yᵢ) + (λ/2)‖W‖² with the intercept unpenalised, which
is scikit-learn's ``LogisticRegression(C=1/λ)``. Binary problems keep one row
that scores class 1; K-class problems use the softmax over K rows.

The solver is a batched Newton method in float64: a direct solve of the
(d+1)×(d+1) Hessian for binary problems, and preconditioned conjugate
gradients on Hessian-vector products for multinomial ones, whose K(d+1)
Hessian is too large to form for every subset. The multinomial objective is
invariant to adding one constant to every intercept, so intercepts are
centred to sum to zero, as scikit-learn leaves them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BaseModel, PrefixFits, class_counts
from .newton import conjugate_gradient, newton_solve


class LogisticRegression(BaseModel):
    """Base model ``lr``.

    Parameters
    ----------
    n_features, n_classes, lam
        See :class:`~modelpred.models.base.BaseModel`.
    tol : float
        Stop once the gradient norm of the summed objective is at most this.
    max_iter : int
        Newton iterations at most per fit.
    """

    name = "lr"
    penalize_intercept = False

    def __init__(self, n_features: int, n_classes: int, lam: float = 1.0, tol: float = 1e-9, max_iter: int = 100):
        super().__init__(n_features, n_classes, lam)
        self.tol = float(tol)
        self.max_iter = int(max_iter)

    # ---------------------------------------------------------- torch functions
    def point_losses(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        z = self.decision_function(theta, X)  # (B, n, R)
        if self.n_rows == 1:
            z = z[..., 0]
            return F.softplus(z) - y.to(z.dtype) * z
        return torch.logsumexp(z, dim=-1) - z.gather(-1, y.expand(z.shape[0], -1)[..., None])[..., 0]

    def point_loss_grads(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        z = self.decision_function(theta, X)
        if self.n_rows == 1:
            return torch.sigmoid(z) - y.to(z.dtype)[None, :, None]
        return torch.softmax(z, dim=-1) - F.one_hot(y, self.n_classes).to(z.dtype)[None]

    def predict_proba(self, theta: Tensor, X: Tensor) -> Tensor:
        z = self.decision_function(theta, X)
        if self.n_rows == 1:
            p1 = torch.sigmoid(z[..., 0])
            return torch.stack([1 - p1, p1], dim=-1)
        return torch.softmax(z, dim=-1)

    # ------------------------------------------------------------------ solver
    def _newton_direction(self, X1: Tensor, y: Tensor):
        """Return the Newton-step callable for (θ, g, mask) on the points X1 = [X, 1]."""
        d1 = X1.shape[1]
        penalty = torch.ones(d1, dtype=X1.dtype)
        penalty[-1] = 0.0
        X = X1[:, :-1]

        if self.n_rows == 1:

            def direct(theta: Tensor, grad: Tensor, mask: Tensor) -> Tensor:
                s = torch.sigmoid(self.decision_function(theta, X)[..., 0])
                weights = mask * s * (1 - s)  # (b, n)
                hessian = torch.einsum("bn,ni,nj->bij", weights, X1, X1) + torch.diag(self.lam * penalty)
                return -torch.linalg.solve(hessian, grad)

            return direct

        K = self.n_classes

        def newton_cg(theta: Tensor, grad: Tensor, mask: Tensor) -> Tensor:
            P = torch.softmax(self.decision_function(theta, X), dim=-1)  # (b, n, K)
            mP = mask[..., None] * P
            diag = torch.einsum("bnk,nd->bkd", mP * (1 - P), X1**2) + self.lam * penalty
            precond = (1.0 / diag).reshape(grad.shape)

            def hvp(v: Tensor) -> Tensor:
                V = v.reshape(-1, K, d1)
                dz = torch.einsum("nd,bkd->bnk", X1, V)  # (b, n, K)
                hz = mP * (dz - (P * dz).sum(dim=-1, keepdim=True))
                out = torch.einsum("bnk,nd->bkd", hz, X1) + self.lam * penalty * V
                return out.reshape(v.shape)

            gnorm = grad.norm(dim=1)
            rtol = torch.clamp(gnorm.sqrt(), max=0.5).clamp_min(1e-12)
            return -conjugate_gradient(hvp, grad, precond, rtol, max_iter=4 * grad.shape[1])

        return newton_cg

    def _centre(self, theta: Tensor) -> Tensor:
        if self.n_rows == 1:
            return theta
        W = theta.reshape(theta.shape[0], self.n_rows, -1).clone()
        W[..., -1] -= W[..., -1].mean(dim=1, keepdim=True)
        return W.reshape(theta.shape)

    def _solve(self, X: Tensor, y: Tensor, theta0: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        X1 = torch.cat([X, torch.ones_like(X[:, :1])], dim=1)
        theta, converged, grad_norm = newton_solve(
            theta0,
            mask,
            objective=lambda th, m: self.objective(th, X, y, m),
            gradient=lambda th, m: self.gradient(th, X, y, m),
            direction=self._newton_direction(X1, y),
            tol=self.tol,
            max_iter=self.max_iter,
        )
        return self._centre(theta), converged, grad_norm

    def fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, y = self._check_data(X, y)
        if not self.has_all_classes(y):
            return np.zeros(self.n_params)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        theta0 = torch.zeros(1, self.n_params, dtype=torch.float64)
        theta, _, _ = self._solve(Xt, yt, theta0, torch.ones(1, len(y), dtype=torch.float64))
        return theta[0].numpy()

    def fit_prefixes(self, X, y, permutations, fixed=None, progress=None) -> PrefixFits:
        X, y = self._check_data(X, y)
        permutations = np.asarray(permutations, dtype=np.int64)
        B, m = permutations.shape
        one_class = (class_counts(y, permutations, self.n_classes, fixed) == 0).any(axis=-1)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        theta_out = np.zeros((B, m, self.n_params))
        converged = np.ones((B, m), dtype=bool)
        kkt = np.zeros((B, m))
        mask = torch.zeros(B, len(y), dtype=torch.float64)
        if fixed is not None and len(fixed):
            mask[:, torch.as_tensor(fixed)] = 1.0
        rows = torch.arange(B)
        theta = torch.zeros(B, self.n_params, dtype=torch.float64)
        for i in range(m):
            mask[rows, torch.from_numpy(permutations[:, i])] = 1.0
            solve = torch.from_numpy(~one_class[:, i])
            theta = torch.where(solve[:, None], theta, torch.zeros_like(theta))
            if solve.any():
                idx = torch.nonzero(solve).flatten()
                th, ok, gnorm = self._solve(Xt, yt, theta[idx], mask[idx])
                theta[idx] = th
                theta_out[idx.numpy(), i] = th.numpy()
                converged[idx.numpy(), i] = ok.numpy()
                kkt[idx.numpy(), i] = gnorm.numpy()
            if progress is not None:
                progress(i + 1)
        return PrefixFits(theta_out, converged, one_class, kkt)
