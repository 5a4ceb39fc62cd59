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

PRECONDITIONER_REFRESH = 10
"""Prefix sizes that share one Hessian factorisation in prefix fits, at most."""


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

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        lam: float = 1.0,
        tol: float = 1e-9,
        max_iter: int = 100,
    ):
        super().__init__(n_features, n_classes, lam)
        self.tol = float(tol)
        self.max_iter = int(max_iter)

    # ---------------------------------------------------------- torch functions
    def point_losses(self, theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
        z = self.decision_function(theta, X)  # (B, n, R)
        if self.n_rows == 1:
            z = z[..., 0]
            return F.softplus(z) - y.to(z.dtype) * z
        return (
            torch.logsumexp(z, dim=-1) - z.gather(-1, y.expand(z.shape[0], -1)[..., None])[..., 0]
        )

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
    # The solver works on gathered points: batch element b has its own s
    # points Xg[b] (s, d), so a prefix of size i costs O(i) rather than O(n).
    def _gathered_decision(self, theta: Tensor, Xg: Tensor) -> Tensor:
        W = theta.reshape(theta.shape[0], self.n_rows, self.n_features + 1)
        return torch.bmm(Xg, W[..., :-1].transpose(1, 2)) + W[:, None, :, -1]

    def _gathered_loss_grads(self, z: Tensor, yg: Tensor) -> Tensor:
        if self.n_rows == 1:
            return torch.sigmoid(z) - yg[..., None].to(z.dtype)
        return torch.softmax(z, dim=-1) - F.one_hot(yg, self.n_classes).to(z.dtype)

    def _gathered_objective(self, theta: Tensor, Xg: Tensor, yg: Tensor) -> Tensor:
        z = self._gathered_decision(theta, Xg)
        if self.n_rows == 1:
            losses = F.softplus(z[..., 0]) - yg.to(z.dtype) * z[..., 0]
        else:
            losses = torch.logsumexp(z, dim=-1) - z.gather(-1, yg[..., None])[..., 0]
        return losses.sum(dim=1) + 0.5 * self.lam * (self.penalty_weights(theta) ** 2).sum(dim=1)

    def _gathered_gradient(self, theta: Tensor, Xg: Tensor, yg: Tensor) -> Tensor:
        dz = self._gathered_loss_grads(self._gathered_decision(theta, Xg), yg)  # (b, s, R)
        grad = torch.bmm(dz.transpose(1, 2), Xg)  # (b, R, d)
        grad = torch.cat([grad, dz.sum(dim=1)[..., None]], dim=-1).reshape(theta.shape)
        return grad + self.lam * self.penalty_weights(theta)

    def _class_blocks(self, theta: Tensor, Xg: Tensor) -> Tensor:
        """Return Cholesky factors (b, K, d+1, d+1) of the multinomial Hessian's per-class blocks.

        The block of class k is Σᵢ pᵢₖ(1 − pᵢₖ) x̃ᵢx̃ᵢᵀ + λ diag(1, …, 1, 0). As a
        preconditioner it ignores only the coupling between classes and cuts
        the conjugate gradient steps about threefold. Adding one point barely
        changes it, so prefixes reuse it for several sizes.
        """
        d1 = self.n_features + 1
        penalty = torch.ones(d1, dtype=theta.dtype)
        penalty[-1] = 0.0
        X1 = torch.cat([Xg, torch.ones_like(Xg[..., :1])], dim=-1)
        P = torch.softmax(self._gathered_decision(theta, Xg), dim=-1)
        blocks = torch.einsum("bsk,bsi,bsj->bkij", P * (1 - P), X1, X1)
        # The jitter keeps the intercept's diagonal positive for a tiny set.
        blocks = blocks + torch.diag(self.lam * penalty + 1e-8)
        return torch.linalg.cholesky(blocks)

    def _binary_hessian(self, theta: Tensor, Xg: Tensor) -> Tensor:
        """Return Cholesky factors (b, d+1, d+1) of the binary objective's Hessian at theta.

        Prefix fits reuse them for several prefix sizes: one more point
        changes the Hessian by about 1/|S|, so the steps stay nearly Newton
        steps while most iterations cost only a gradient.
        """
        d1 = self.n_features + 1
        penalty = torch.ones(d1, dtype=theta.dtype)
        penalty[-1] = 0.0
        X1 = torch.cat([Xg, torch.ones_like(Xg[..., :1])], dim=-1)
        s = torch.sigmoid(self._gathered_decision(theta, Xg)[..., 0])
        weighted = X1 * (s * (1 - s))[..., None]  # (b, s, d+1)
        hessian = torch.bmm(weighted.transpose(1, 2), X1) + torch.diag(self.lam * penalty)
        return torch.linalg.cholesky(hessian)

    def _gathered_direction(
        self, theta: Tensor, grad: Tensor, Xg: Tensor, yg: Tensor, factors: Tensor | None = None
    ) -> Tensor:
        """Return a Newton step solving H d = -g on each element's own points.

        ``factors`` are Hessian factors from :meth:`_binary_hessian` (binary;
        the step then uses that earlier Hessian) or per-class block factors
        from :meth:`_class_blocks` (multinomial; without them the conjugate
        gradient preconditioner is diagonal).
        """
        if self.n_rows == 1 and factors is not None:
            return -torch.cholesky_solve(grad[..., None], factors)[..., 0]
        b, d1 = theta.shape[0], self.n_features + 1
        penalty = torch.ones(d1, dtype=theta.dtype)
        penalty[-1] = 0.0
        X1 = torch.cat([Xg, torch.ones_like(Xg[..., :1])], dim=-1)  # (b, s, d+1)
        z = self._gathered_decision(theta, Xg)

        if self.n_rows == 1:
            s = torch.sigmoid(z[..., 0])
            weighted = X1 * (s * (1 - s))[..., None]  # (b, s, d+1)
            hessian = torch.bmm(weighted.transpose(1, 2), X1) + torch.diag(self.lam * penalty)
            return -torch.linalg.solve(hessian, grad)

        K = self.n_classes
        P = torch.softmax(z, dim=-1)  # (b, s, K)
        if factors is not None:

            def precond(r: Tensor) -> Tensor:
                return torch.cholesky_solve(r.reshape(b, K, d1, 1), factors).reshape(r.shape)

        else:
            diag = torch.einsum("bsk,bsd->bkd", P * (1 - P), X1**2) + self.lam * penalty
            precond = (1.0 / diag).reshape(b, -1)

        # Hessian-vector products run in float32, which halves their cost. The
        # step only has to solve H d = -g to the forcing tolerance (1e-4 or
        # looser, far above float32 rounding); gradients, line search and the
        # convergence test stay in float64, so the returned θ is as accurate.
        X1_32, P_32 = X1.float(), P.float()

        def hvp(v: Tensor) -> Tensor:
            V = v.reshape(b, K, d1).float()
            dz = torch.einsum("bsd,bkd->bsk", X1_32, V)
            hz = P_32 * (dz - (P_32 * dz).sum(dim=-1, keepdim=True))
            out = torch.einsum("bsk,bsd->bkd", hz, X1_32).double()
            return (out + self.lam * penalty * v.reshape(b, K, d1)).reshape(v.shape)

        # Forcing term min(0.1, √‖g‖): loose solves far from the optimum and
        # superlinear convergence near it. A tighter term costs more conjugate
        # gradient steps than the Newton steps it saves.
        rtol = torch.clamp(grad.norm(dim=1).sqrt(), max=0.1).clamp_min(1e-12)
        return -conjugate_gradient(hvp, grad, precond, rtol, max_iter=200)

    def _centre(self, theta: Tensor) -> Tensor:
        if self.n_rows == 1:
            return theta
        W = theta.reshape(theta.shape[0], self.n_rows, -1).clone()
        W[..., -1] -= W[..., -1].mean(dim=1, keepdim=True)
        return W.reshape(theta.shape)

    def _solve(
        self, Xg: Tensor, yg: Tensor, theta0: Tensor, factors: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Solve the B problems on points Xg (B, s, d), yg (B, s), warm-started at theta0 (B, p).

        ``newton_solve`` passes each callable the batch rows still iterating,
        which select the points of those rows. ``factors`` (B, K, d+1, d+1)
        precondition multinomial problems; they are computed at theta0 when
        not given.
        """
        if self.n_rows > 1 and factors is None:
            factors = self._class_blocks(theta0, Xg)

        everyone = len(theta0)

        def points(rows: Tensor) -> tuple[Tensor, Tensor]:
            # Gathering copies the points, so skip it while every problem iterates.
            if len(rows) == everyone:
                return Xg, yg
            return Xg[rows], yg[rows]

        def direction(th: Tensor, g: Tensor, rows: Tensor) -> Tensor:
            blocks = None if factors is None else factors[rows]
            return self._gathered_direction(th, g, *points(rows), blocks)

        theta, converged, grad_norm = newton_solve(
            theta0,
            torch.arange(len(theta0)),
            objective=lambda th, rows: self._gathered_objective(th, *points(rows)),
            gradient=lambda th, rows: self._gathered_gradient(th, *points(rows)),
            direction=direction,
            tol=self.tol,
            max_iter=self.max_iter,
        )
        return self._centre(theta), converged, grad_norm

    def fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, y = self._check_data(X, y)
        if not self.has_all_classes(y):
            return np.zeros(self.n_params)
        theta0 = torch.zeros(1, self.n_params, dtype=torch.float64)
        theta, _, _ = self._solve(torch.from_numpy(X)[None], torch.from_numpy(y)[None], theta0)
        return theta[0].numpy()

    def fit_prefixes(self, X, y, permutations, fixed=None, progress=None) -> PrefixFits:
        X, y = self._check_data(X, y)
        permutations = np.asarray(permutations, dtype=np.int64)
        B, m = permutations.shape
        fixed = np.asarray(fixed if fixed is not None else [], dtype=np.int64)
        one_class = (class_counts(y, permutations, self.n_classes, fixed) == 0).any(axis=-1)

        # Each row lists the fixed points and then the permuted ones, so the
        # points of prefix i are the first len(fixed) + i + 1 columns.
        order = np.concatenate([np.broadcast_to(fixed, (B, len(fixed))), permutations], axis=1)
        X_ordered = torch.from_numpy(X[order])  # (B, f + m, d)
        y_ordered = torch.from_numpy(y[order])  # (B, f + m)

        theta_out = np.zeros((B, m, self.n_params))
        converged = np.ones((B, m), dtype=bool)
        kkt = np.zeros((B, m))
        theta = torch.zeros(B, self.n_params, dtype=torch.float64)
        factors, factors_age = None, 0
        for i in range(m):
            size = len(fixed) + i + 1
            solve = torch.from_numpy(~one_class[:, i])
            theta = torch.where(solve[:, None], theta, torch.zeros_like(theta))
            if solve.any():
                idx = torch.nonzero(solve).flatten()
                # Factors are refreshed on a fixed schedule of prefix sizes,
                # so the result depends on nothing but the block. Small sets
                # change faster with each point and refresh more often.
                refresh = min(PRECONDITIONER_REFRESH, max(1, size // 20))
                if factors is None or factors_age >= refresh:
                    if self.n_rows > 1:
                        factors = self._class_blocks(theta, X_ordered[:, :size])
                    else:
                        factors = self._binary_hessian(theta, X_ordered[:, :size])
                    factors_age = 0
                factors_age += 1
                blocks = factors[idx]
                if len(idx) == B:
                    # Slicing is a view; indexing with idx would copy the points.
                    Xg, yg = X_ordered[:, :size], y_ordered[:, :size]
                else:
                    Xg, yg = X_ordered[idx, :size], y_ordered[idx, :size]
                th, ok, gnorm = self._solve(Xg, yg, theta[idx], blocks)
                theta[idx] = th
                theta_out[idx.numpy(), i] = th.numpy()
                converged[idx.numpy(), i] = ok.numpy()
                kkt[idx.numpy(), i] = gnorm.numpy()
            if progress is not None:
                progress(i + 1)
        return PrefixFits(theta_out, converged, one_class, kkt)
