"""The DeepSets network Â(S) = ρ(c · Σ_{(x,y)∈S} φ(x, y)).

Each element of a set is the feature vector concatenated with the one-hot
label, e = [x, onehot(y)] ∈ R^{d+K}. φ maps every element to an embedding in
R^h, the embeddings are summed over the set, and ρ maps the sum to the output:
the flat θ of the base model (p values) or one utility.

Two fixed affine maps wrap the learned layers, and both are buffers of the
state_dict, so a saved network needs nothing else to reproduce its outputs:

- the sum is multiplied by c = 1 / n_ref, where n_ref is the largest training
  subset, so that ρ gets inputs of order one for any n. Unlike mean pooling,
  a constant factor keeps Â a sum-pooled set function whose output depends on |S|.
- the output is ``target_mean + target_scale ⊙ ρ(·)``, where the mean and
  standard deviation per output coordinate come from the training targets, so
  a freshly initialised network starts near the mean target at every scale.

Sum pooling makes predictions independent of element order and of padding,
because a padded or absent element contributes exactly zero to the sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def encode_elements(X: Tensor, y: Tensor, n_classes: int) -> Tensor:
    """Return the DeepSets elements [x, onehot(y)] of shape (n, d + K)."""
    onehot = F.one_hot(y.long(), n_classes).to(X.dtype)  # (n, K)
    return torch.cat([X, onehot], dim=1)  # (n, d + K)


def _mlp(sizes: list[int], final_activation: bool) -> nn.Sequential:
    modules: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        modules.append(nn.Linear(fan_in, fan_out))
        if final_activation or index < len(sizes) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class DeepSets(nn.Module):
    """Sum-pooled set network with φ and ρ of ``layers`` fully connected layers each.

    φ ends with a ReLU, because a final linear layer of φ would commute with
    the sum and merge into ρ's first layer. ρ ends with a linear layer.

    Parameters
    ----------
    n_features : int
        Feature dimension d.
    n_classes : int
        Number of classes K of the one-hot label.
    n_outputs : int
        Output size: p for a θ surrogate, 1 for a utility surrogate.
    hidden : int
        Units of every hidden layer (and of the embedding).
    layers : int
        Linear layers in φ and in ρ each.
    """

    def __init__(
        self, n_features: int, n_classes: int, n_outputs: int, hidden: int = 128, layers: int = 3
    ):
        super().__init__()
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.n_outputs = int(n_outputs)
        self.hidden = int(hidden)
        self.layers = int(layers)
        self.phi = _mlp(
            [self.n_features + self.n_classes] + [self.hidden] * self.layers, final_activation=True
        )
        self.rho = _mlp([self.hidden] * self.layers + [self.n_outputs], final_activation=False)
        self.register_buffer("pool_scale", torch.ones(()))
        self.register_buffer("target_mean", torch.zeros(self.n_outputs))
        self.register_buffer("target_scale", torch.ones(self.n_outputs))

    def set_normalisation(self, pool_size: int, targets: Tensor) -> None:
        """Set c = 1 / ``pool_size`` and the output scaling from ``targets`` (N, out).

        Output coordinates that never vary keep scale 1, so ρ can still move them.
        """
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        targets = targets.reshape(-1, self.n_outputs).to(torch.float64)
        mean = targets.mean(dim=0)
        std = targets.std(dim=0, correction=0) if len(targets) > 1 else torch.zeros_like(mean)
        scale = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.pool_scale.fill_(1.0 / pool_size)
        self.target_mean.copy_(mean.to(self.target_mean.dtype))
        self.target_scale.copy_(scale.to(self.target_scale.dtype))

    def embed(self, elements: Tensor) -> Tensor:
        """Return φ(e) of shape (..., h) for elements of shape (..., d + K)."""
        return self.phi(elements)

    def readout(self, pooled: Tensor) -> Tensor:
        """Return the outputs (..., out) for summed embeddings ``pooled`` (..., h)."""
        hidden = self.rho(pooled * self.pool_scale)  # (..., out)
        return self.target_mean + self.target_scale * hidden  # (..., out)

    def forward(self, elements: Tensor, mask: Tensor) -> Tensor:
        """Return Â for subsets of shared elements.

        Parameters
        ----------
        elements : Tensor, shape (n, d + K)
            All points that the subsets draw from.
        mask : Tensor, shape (B, n)
            1 where a point is in subset b, 0 elsewhere.

        Returns
        -------
        Tensor, shape (B, out)
        """
        embeddings = self.embed(elements)  # (n, h)
        pooled = mask.to(embeddings.dtype) @ embeddings  # (B, h)
        return self.readout(pooled)  # (B, out)

    def forward_prefixes(
        self, elements: Tensor, permutations: Tensor, fixed: Tensor | None = None
    ) -> Tensor:
        """Return Â for every prefix of each permutation from one cumulative sum.

        Parameters
        ----------
        elements : Tensor, shape (n, d + K)
        permutations : Tensor of int, shape (T, m)
            Indices into ``elements``.
        fixed : Tensor of int, shape (f,), optional
            Indices in every subset.

        Returns
        -------
        Tensor, shape (T, m, out)
            Entry [t, i] is Â of ``fixed`` plus ``permutations[t, :i+1]``.
        """
        return self.readout(prefix_pool(self.embed(elements), permutations, fixed))


def prefix_pool(embeddings: Tensor, permutations: Tensor, fixed: Tensor | None = None) -> Tensor:
    """Return the summed embeddings of all prefixes, shape (T, m, h).

    ``embeddings`` (n, h) contains φ of every point once, so a prefix costs one
    addition rather than a pass of φ over its points.
    """
    # index_select rather than embeddings[permutations]: the backward pass of
    # advanced indexing accumulates with index_put_, whose multi-threaded CPU
    # kernel sums duplicates in varying order (seen with torch 2.14.1), so
    # runs would differ in the last bits.
    T, m = permutations.shape
    permuted = embeddings.index_select(0, permutations.reshape(-1)).reshape(T, m, -1)  # (T, m, h)
    pooled = permuted.cumsum(dim=1)  # (T, m, h)
    if fixed is not None and len(fixed):
        pooled = pooled + embeddings.index_select(0, fixed).sum(dim=0)  # (T, m, h)
    return pooled
