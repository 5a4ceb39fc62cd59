"""Batched Newton solver for smooth, strongly convex objectives on many subsets at once.

Permutation sampling solves thousands of small problems that differ by one
point from the previous one. Solving B of them at once as tensor operations,
each warm-started from the previous prefix, replaces a Python-level library
call per fit with a handful of batched products per prefix size.

Each batch element stops as soon as its own gradient norm meets the
tolerance, so its result does not depend on which other problems share the
batch, only on the fixed composition of the batch it ran in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Objective = Callable[[Tensor, Tensor], Tensor]
Direction = Callable[[Tensor, Tensor, Tensor], Tensor]


def newton_solve(
    theta: Tensor,
    batch: Tensor,
    objective: Objective,
    gradient: Objective,
    direction: Direction,
    tol: float,
    max_iter: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Minimise ``objective(θ_b, batch_b)`` for every row of ``theta``.

    Parameters
    ----------
    theta : Tensor, shape (B, p)
        Starting points (warm starts).
    batch : Tensor, shape (B, ...)
        Per-problem data (subset masks, or row numbers that select gathered
        points); the callables receive the rows of the problems still iterating.
    objective, gradient : callable
        ``(theta (b, p), batch rows) -> (b,)`` and ``-> (b, p)``.
    direction : callable
        ``(theta, grad, batch rows) -> step (b, p)``, an (approximate) Newton step
        solving H d = -g.
    tol : float
        Stop an element once ‖∇L‖ ≤ tol.
    max_iter : int
        Newton iterations at most.

    Returns
    -------
    theta : Tensor, shape (B, p)
    converged : Tensor of bool, shape (B,)
    grad_norm : Tensor, shape (B,)
        ‖∇L‖ at the returned θ.
    """
    theta = theta.clone()
    value = objective(theta, batch)
    grad = gradient(theta, batch)
    grad_norm = grad.norm(dim=1)
    frozen = torch.zeros_like(grad_norm, dtype=torch.bool)
    for _ in range(max_iter):
        active = torch.nonzero((grad_norm > tol) & ~frozen).flatten()
        if len(active) == 0:
            break
        th, m, g, f0 = theta[active], batch[active], grad[active], value[active]
        d = direction(th, g, m)
        slope = (g * d).sum(dim=1)
        # A direction that is not a descent direction (a rare CG failure)
        # falls back to steepest descent so that the line search terminates.
        bad = slope >= 0
        if bad.any():
            d[bad] = -g[bad]
            slope = (g * d).sum(dim=1)
        step = torch.ones_like(f0)
        accepted = torch.zeros_like(f0, dtype=torch.bool)
        new_theta, new_value = th.clone(), f0.clone()
        # Armijo backtracking. Near the optimum the decrease falls below the
        # rounding of f, so a step that changes f by no more than that
        # rounding is accepted too.
        slack = 1e-12 * f0.abs().clamp_min(1.0)
        for _ in range(40):
            todo = ~accepted
            if not todo.any():
                break
            trial = th + step[:, None] * d
            f_trial = objective(trial, m)
            ok = todo & (f_trial <= f0 + 1e-4 * step * slope + slack)
            new_theta[ok] = trial[ok]
            new_value[ok] = f_trial[ok]
            accepted |= ok
            step = torch.where(accepted, step, step * 0.5)
        theta[active] = new_theta
        value[active] = new_value
        grad[active] = gradient(new_theta, m)
        grad_norm[active] = grad[active].norm(dim=1)
        # An element for which no step decreased f is at its optimum to
        # working precision, so further iterations cannot move it.
        frozen[active[~accepted]] = True
    return theta, grad_norm <= tol, grad_norm


def conjugate_gradient(
    hvp: Callable[[Tensor], Tensor],
    rhs: Tensor,
    precond: Tensor | Callable[[Tensor], Tensor],
    rtol: Tensor,
    max_iter: int,
) -> Tensor:
    """Solve H x = rhs for a batch of positive semi-definite H by preconditioned CG.

    ``hvp(v)`` returns H v for v of shape (B, p). ``precond`` is either the
    inverse (B, p) of a diagonal preconditioner or a callable that applies
    the inverse of a positive definite one. Element b stops once its residual
    is at most ``rtol[b] * ‖rhs_b‖``.
    """
    apply_precond = precond if callable(precond) else (lambda r: precond * r)
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    z = apply_precond(r)
    p = z.clone()
    rz = (r * z).sum(dim=1)
    target = rtol * rhs.norm(dim=1)
    for _ in range(max_iter):
        active = r.norm(dim=1) > target
        if not active.any():
            break
        Hp = hvp(p)
        curvature = (p * Hp).sum(dim=1)
        alpha = torch.where(
            active & (curvature > 0), rz / curvature.clamp_min(1e-300), torch.zeros_like(rz)
        )
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * Hp
        z = apply_precond(r)
        rz_new = (r * z).sum(dim=1)
        beta = torch.where(active, rz_new / rz.clamp_min(1e-300), torch.zeros_like(rz))
        p = torch.where(active[:, None], z + beta[:, None] * p, p)
        rz = torch.where(active, rz_new, rz)
    return x
