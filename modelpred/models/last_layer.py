"""The last layer of a frozen network, trained by full-batch momentum gradient descent (``nn``).

The ModelPred paper's third base model fine-tunes only the last layer of a
ResNet-18 pretrained on CIFAR-10, with SGD at learning rate 0.001 and
momentum 0.9. Here that layer is a linear map on the frozen 512-d features
(:mod:`modelpred.data.images`): one row scoring class 1 against class 0 for
two classes, as in ``lr``, and one row per class with a softmax otherwise.
Its loss is ``lr``'s cross-entropy with the same L2 penalty,

    L(θ; S) = Σ_{i∈S} ℓ(θ; xᵢ, yᵢ) + (λ/2) ‖W‖²,   intercept unpenalised,

so the objective, gradient, per-point losses and probabilities are those of
:class:`~modelpred.models.logistic.LogisticRegression`, and the surrogate's
KKT and utility terms apply unchanged.

The learning algorithm
----------------------
A(S) starts from θ = 0 and takes ``steps`` full-batch heavy-ball steps on
L(θ; S), the update of ``torch.optim.SGD(lr=η, momentum=μ)``:

    v ← μ v + ∇L(θ; S),   θ ← θ − η v,   v₀ = 0,

with η = 0.001 and μ = 0.9 by default. Every step uses the whole of S and
nothing is random, so A(S) is a function of the set S, not of an order or a
seed. Two details make that exact in floating point: :meth:`LastLayerNN.fit`
sorts the rows of (X, y) before descending, so any order of the same points
gives the same bits, and :meth:`LastLayerNN.fit_prefixes` sums the gradient
over a mask of the fixed rows of ``X``. The two routes sum in different
orders, so they agree to rounding (about 1e-12 relative), not bit for bit.

Unlike SGD on minibatches, whose result changes with the batch order, this
A is deterministic, which the ground truth of every experiment needs. A
subset that lacks a class gets θ = 0, as for ``lr``.

Step count
----------
In a direction where the loss is flat, only the penalty pulls θ, with
curvature λ, and the heavy-ball iteration contracts the error there by
about 1 − η λ / (1 − μ) = 0.99 per step (η = 0.001, μ = 0.9, λ = 1). Where
the summed loss curves more (at most n/2 for rows of norm at most 1 and the
intercept's constant 1, so 104 for 208 points, far below the stability
limit 2(1 + μ)/η = 3,800), the iteration is underdamped and contracts by
√μ ≈ 0.95 per step. :data:`DEFAULT_STEPS` = 1,000 steps therefore shrink the distance
to the penalised optimum by a factor of about 0.99¹⁰⁰⁰ ≈ 4e-5 for any
features, which makes the surrogate's KKT term meaningful. Measured on 208
Hymenoptera images with the random-init backbone: ‖∇L‖ falls from 5.4 at
θ = 0 to 7e-6 for the full set and to at most 1.3e-3 over all prefixes,
and θ lies 7e-6 from the ``lr`` solution. A smaller λ slows the descent in
proportion (λ = 0.1 needs about ten times the steps). ``converged``
records whether ‖∇L(θ; S)‖ ≤ ``tol`` after the last step; unconverged
prefixes are kept, because A is defined by its step count, not by a
tolerance.

Cost: each step is two matrix products over all n points for every subset,
so the 15,000 prefixes of 208 Hymenoptera images take about 6.4 TFLOP in
float64, minutes on one CPU core (about 7 s per permutation of 208 points
on the 2-core build machine under load).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import PrefixFits, class_counts
from .logistic import LogisticRegression

DEFAULT_STEPS = 1000
"""Gradient steps of one fit; see the module docstring for how it was chosen."""

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_MOMENTUM = 0.9

PREFIX_CHUNK = 4096
"""Prefixes descended together in :meth:`LastLayerNN.fit_prefixes` (memory ~ chunk × (n + p))."""


class LastLayerNN(LogisticRegression):
    """Base model ``nn``: a linear last layer trained by momentum gradient descent.

    Parameters
    ----------
    n_features, n_classes, lam
        See :class:`~modelpred.models.base.BaseModel`.
    steps : int
        Full-batch gradient steps per fit.
    learning_rate : float
        Step size η.
    momentum : float
        Heavy-ball momentum μ in [0, 1).
    tol : float
        ``converged`` is ‖∇L(θ; S)‖ ≤ tol after the last step; it does not
        stop the descent.
    device : str
        Torch device of :meth:`fit_prefixes` (``"cpu"``, ``"cuda"`` or
        ``"auto"``). It changes speed and the last bits, not the algorithm,
        so it is not part of :meth:`config`.
    """

    name = "nn"
    penalize_intercept = False

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        lam: float = 1.0,
        steps: int = DEFAULT_STEPS,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        momentum: float = DEFAULT_MOMENTUM,
        tol: float = 1e-2,
        device: str = "cpu",
    ):
        super().__init__(n_features, n_classes, lam)
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.steps = int(steps)
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.tol = float(tol)
        self.device = device

    def config(self) -> dict:
        """Return the constructor arguments that define A, for provenance and reloading."""
        return {
            **super().config(),
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
        }

    # ------------------------------------------------------------------ solver
    def _torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _fast_gradient(self, theta: Tensor, X1: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        """Return ∇L of shape (B, p) for θ (B, p) on X1 = [X, 1] (n, d+1), as :meth:`gradient`.

        The same quantity as the base class's closed form, with X1 built once
        per descent instead of once per step, and both products written as
        single matrix products over all B·R rows of θ.
        """
        B, R = theta.shape[0], self.n_rows
        rows = theta.view(B * R, -1)  # (B·R, d+1)
        z = (rows @ X1.T).view(B, R, -1)  # (B, R, n)
        if R == 1:
            dz = torch.sigmoid(z) - y.to(z.dtype)
        else:
            dz = torch.softmax(z, dim=1) - F.one_hot(y, self.n_classes).T.to(z.dtype)
        dz = dz * mask[:, None, :]  # (B, R, n)
        grad = dz.view(B * R, -1) @ X1  # (B·R, d+1)
        grad[:, :-1] += self.lam * rows[:, :-1]
        return grad.view(theta.shape)

    def descend(self, X: Tensor, y: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Run A on every masked subset at once.

        Parameters
        ----------
        X : Tensor, shape (n, d)
        y : Tensor of int64, shape (n,)
        mask : Tensor, shape (B, n)
            1 for a member of subset b, 0 otherwise.

        Returns
        -------
        theta : Tensor, shape (B, p)
            θ after :attr:`steps` steps from 0.
        grad_norm : Tensor, shape (B,)
            ‖∇L(θ; S_b)‖ at the returned θ.
        """
        X1 = torch.cat([X, torch.ones_like(X[:, :1])], dim=1)
        theta = torch.zeros(mask.shape[0], self.n_params, dtype=X.dtype, device=X.device)
        velocity = torch.zeros_like(theta)
        for _ in range(self.steps):
            velocity.mul_(self.momentum).add_(self._fast_gradient(theta, X1, y, mask))
            theta.sub_(self.learning_rate * velocity)
        return theta, self._fast_gradient(theta, X1, y, mask).norm(dim=1)

    def fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, y = self._check_data(X, y)
        if not self.has_all_classes(y):
            return np.zeros(self.n_params)
        # Sorting the rows (by label, then by every feature) fixes the order in
        # which the gradient sums over points, so a shuffled copy of the same
        # set gives the same bits.
        order = np.lexsort(np.column_stack([X, y]).T[::-1])
        Xt = torch.from_numpy(np.ascontiguousarray(X[order]))
        yt = torch.from_numpy(np.ascontiguousarray(y[order]))
        theta, _ = self.descend(Xt, yt, torch.ones(1, len(y), dtype=torch.float64))
        return theta[0].numpy()

    def fit_masks(self, X: np.ndarray, y: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Train on many subsets of the rows of X at once.

        Parameters
        ----------
        X, y : ndarray, shapes (n, d) and (n,)
        masks : ndarray of bool or 0/1, shape (B, n)
            Row b selects subset S_b.

        Returns
        -------
        ndarray, shape (B, p)
            A(S_b) per row; θ = 0 for a subset that lacks a class.
        """
        X, y = self._check_data(X, y)
        masks = np.asarray(masks)
        if masks.ndim != 2 or masks.shape[1] != len(y):
            raise ValueError(f"masks must have shape (B, {len(y)}) to match X, got {masks.shape}")
        members = masks.astype(bool)
        counts = members.astype(np.int64) @ np.eye(self.n_classes, dtype=np.int64)[y]  # (B, K)
        solve = np.flatnonzero((counts > 0).all(axis=1))
        theta = np.zeros((len(masks), self.n_params))
        device = self._torch_device()
        Xt = torch.from_numpy(X).to(device)
        yt = torch.from_numpy(y).to(device)
        for start in range(0, len(solve), PREFIX_CHUNK):
            rows = solve[start : start + PREFIX_CHUNK]
            chunk = torch.from_numpy(members[rows]).to(device, Xt.dtype)
            theta[rows] = self.descend(Xt, yt, chunk)[0].cpu().numpy()
        return theta

    def fit_prefixes(self, X, y, permutations, fixed=None, progress=None) -> PrefixFits:
        """Train on every prefix of each permutation, all prefixes descending together.

        Each prefix starts from θ = 0 (there is no warm start, because A(S)
        must not depend on the path to S). The prefixes are rows of one
        batch of masks, so no Python loop runs over points.

        See :meth:`~modelpred.models.base.BaseModel.fit_prefixes` for the
        parameters. ``progress`` is called with the number of prefix sizes
        finished after each chunk of prefixes.
        """
        X, y = self._check_data(X, y)
        permutations = np.asarray(permutations, dtype=np.int64)
        B, m = permutations.shape
        one_class = (class_counts(y, permutations, self.n_classes, fixed) == 0).any(axis=-1)
        device = self._torch_device()
        Xt = torch.from_numpy(X).to(device)
        yt = torch.from_numpy(y).to(device)

        theta_out = np.zeros((B, m, self.n_params))
        kkt = np.zeros((B, m))
        # Rows (b, i) with i >= 0 hold the fixed points plus permutations[b, :i+1].
        rows_b, rows_i = np.nonzero(~one_class)
        rank = np.empty((B, len(y)), dtype=np.int64)
        rank.fill(m)
        rank[np.arange(B)[:, None], permutations] = np.arange(m)[None, :]
        fixed_mask = np.zeros(len(y), dtype=bool)
        if fixed is not None and len(fixed):
            fixed_mask[np.asarray(fixed, dtype=np.int64)] = True
        for start in range(0, len(rows_b), PREFIX_CHUNK):
            b = rows_b[start : start + PREFIX_CHUNK]
            i = rows_i[start : start + PREFIX_CHUNK]
            mask = (rank[b] <= i[:, None]) | fixed_mask[None, :]  # (chunk, n)
            theta, grad_norm = self.descend(Xt, yt, torch.from_numpy(mask).to(device, Xt.dtype))
            theta_out[b, i] = theta.cpu().numpy()
            kkt[b, i] = grad_norm.cpu().numpy()
            if progress is not None:
                progress(int(round(m * min(start + PREFIX_CHUNK, len(rows_b)) / len(rows_b))))
        if progress is not None and len(rows_b) == 0:
            progress(m)
        converged = (kkt <= self.tol) | one_class
        return PrefixFits(theta_out, converged, one_class, kkt)
