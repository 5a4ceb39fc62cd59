"""Training of the DeepSets surrogate on permutation samples, with prefix sums.

Samples are the prefixes of T permutations: ``theta[t, i]`` is A trained on
the fixed points plus ``permutations[t, :i+1]``. One optimiser step takes a
batch of whole permutations and trains on all their prefixes at once:

1. φ runs once over the n points, giving embeddings E (n, h).
2. The summed embeddings of all prefixes are one cumulative sum,
   P[t, i] = Σ_{j≤i} E[π_t(j)] + Σ_{k∈fixed} E[k], shape (b, m, h).
3. ρ maps every P[t, i] to a prediction.
4. The KKT and utility terms of all prefixes are masked products over the
   points, with the lower-triangular (in permuted order) prefix masks.
5. The marginal term compares the change of the prediction from each prefix
   to the next with the change of θ, for all consecutive prefixes at once.

When b·m·n exceeds a memory budget, step 4 runs on chunks of prefixes. The
gradient is then taken in two stages: each chunk's loss is backpropagated to
a detached copy of the predictions, and their accumulated gradient is
backpropagated through ρ, the cumulative sum and φ once, so ρ and φ still
run once per prefix and point per step.

Training on the CPU is bitwise reproducible. The initialisation is seeded,
the validation split is drawn from ``seed`` and the order of permutations in
epoch e comes from a generator seeded by (seed, e). Torch runs on one thread
by default, because multi-threaded reductions sum in an order that depends on
the thread count. No random state carries from one epoch to the next, so a run
resumed from the checkpoint of epoch e continues exactly as the uninterrupted
run. On a GPU the weights may differ in the last bits.

NOTE: the tests run on the CPU only, so the ``cuda`` path (chosen by
``device="auto"`` when a GPU is present) has not been exercised by them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..io import FORMAT_VERSION, atomic_path
from ..models.base import BaseModel, class_counts
from .config import SurrogateConfig, check_method, loss_weights
from .losses import LossTerms, permutation_ranks, surrogate_loss_terms
from .network import DeepSets, encode_elements, prefix_pool
from .predictor import CHUNK_ELEMENTS, Surrogate, array_digest, resolve_device

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]
"""Called as ``callback(epoch, record)`` after each epoch's checkpoint is written."""

TERM_NAMES = ("parameter", "kkt", "utility", "marginal")


@dataclass
class TrainingResult:
    """A trained surrogate and its training record.

    Attributes
    ----------
    surrogate : Surrogate
        The network with the weights of the best epoch.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``val_loss``, the
        terms ``{train,val}_{parameter,kkt,utility}`` and ``seconds``. Each
        term is a mean over all prefixes, where one-class prefixes add 0 to
        the KKT term, and None where the term was not computed.
    best_epoch : int
        1-based epoch whose weights were kept (0 if no epoch ran).
    best_loss : float
        Its validation loss (training loss when ``val_fraction`` is 0).
    stopped_early : bool
        Whether patience ran out before ``epochs``.
    train_permutations, val_permutations : ndarray of int
        Rows of the samples used for training and for early stopping.
    """

    surrogate: Surrogate
    history: list[dict[str, Any]]
    best_epoch: int
    best_loss: float
    stopped_early: bool
    train_permutations: np.ndarray
    val_permutations: np.ndarray
    seconds: float = 0.0


def split_permutations(
    n_permutations: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split permutation rows into sorted training and validation indices.

    Whole permutations go to one side, so no validation prefix shares a
    permutation with a training prefix.
    """
    if val_fraction == 0:
        return np.arange(n_permutations), np.arange(0)
    n_val = max(1, int(round(val_fraction * n_permutations)))
    if n_permutations - n_val < 1:
        raise ValueError(
            f"val_fraction {val_fraction} leaves no training permutation out of {n_permutations}; "
            "sample more permutations or set val_fraction to 0"
        )
    order = np.random.default_rng(seed).permutation(n_permutations)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def epoch_order(train_ids: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Return the order of training permutations in ``epoch`` (0-based), seeded by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(train_ids)


def _digest(*arrays: np.ndarray | None) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class _PrefixTrainer:
    """The samples as tensors on the training device, with one epoch's training and evaluation."""

    def __init__(
        self,
        model: BaseModel,
        network: DeepSets,
        method: str,
        config: SurrogateConfig,
        device: torch.device,
        X: np.ndarray,
        y: np.ndarray,
        permutations: np.ndarray,
        targets: np.ndarray,
        solved: np.ndarray,
        train_loss_true: np.ndarray | None,
        fixed: np.ndarray | None,
    ):
        self.model = model
        self.network = network
        self.method = method
        self.config = config
        self.w_kkt, self.w_util, self.w_marginal = loss_weights(method, config)
        dtype = torch.float32
        self.X = torch.as_tensor(X, dtype=dtype, device=device)
        self.y = torch.as_tensor(y, dtype=torch.long, device=device)
        self.elements = encode_elements(self.X, self.y, model.n_classes)  # (n, d + K)
        self.permutations = torch.as_tensor(permutations, dtype=torch.long, device=device)  # (T, m)
        self.targets = torch.as_tensor(targets, dtype=dtype, device=device)  # (T, m, out)
        self.solved = torch.as_tensor(solved, dtype=torch.bool, device=device)  # (T, m)
        self.train_loss_true = (
            None
            if train_loss_true is None
            else torch.as_tensor(train_loss_true, dtype=dtype, device=device)
        )
        self.fixed = (
            None
            if fixed is None or len(fixed) == 0
            else torch.as_tensor(fixed, dtype=torch.long, device=device)
        )
        self.n_points = len(y)
        self.prefix_length = self.permutations.shape[1]
        # The masked terms materialise (subsets, n, R) tensors, so the number
        # of prefixes per chunk bounds their size.
        self.chunk = max(1, CHUNK_ELEMENTS // (self.n_points * model.n_rows))

    def batch_terms(
        self,
        ids: Tensor,
        weights: tuple[float, float, float],
        train: bool,
        rng: np.random.Generator | None = None,
    ) -> tuple[Tensor, int]:
        """Return the summed loss terms (4,) of all prefixes of ``ids`` and the prefix count.

        With ``train`` the gradient of the batch's mean loss (under ``weights``)
        is accumulated into the network's parameters. With ``rng`` and
        ``config.regulariser_prefixes`` set, the KKT and utility terms are
        computed at that many prefixes per permutation, drawn from ``rng``,
        and their sums are scaled to estimate the sums over all prefixes.
        """
        permutations = self.permutations[ids]  # (b, m)
        b, m = permutations.shape
        rows = b * m
        embeddings = self.network.embed(self.elements)  # (n, h)
        pooled = prefix_pool(embeddings, permutations, self.fixed)  # (b, m, h)
        prediction = self.network.readout(pooled.view(rows, -1))  # (b·m, out)
        prediction_leaf = prediction.detach().requires_grad_(train)
        w_kkt, w_util, w_marginal = weights
        needs_masks = w_kkt > 0 or w_util > 0
        ranks = (
            permutation_ranks(permutations, self.n_points, self.fixed) if needs_masks else None
        )  # (b, n)
        every_row = torch.arange(rows, device=pooled.device)
        n_drawn = self.config.regulariser_prefixes
        if needs_masks and rng is not None and n_drawn is not None and n_drawn < m:
            positions = np.sort(np.argsort(rng.random((b, m)), axis=1)[:, :n_drawn], axis=1)
            penalised = torch.as_tensor(
                (np.arange(b)[:, None] * m + positions).reshape(-1), device=pooled.device
            )
            # The parameter term on every prefix, then the regularisers on the
            # drawn ones, scaled by m / n_drawn so that the sums estimate full ones.
            groups = [
                (every_row, (0.0, 0.0), 1.0, 1.0),
                (penalised, (w_kkt, w_util), 0.0, m / n_drawn),
            ]
        else:
            groups = [(every_row, (w_kkt, w_util), 1.0, 1.0)]

        sums = torch.zeros(len(TERM_NAMES), dtype=torch.float64, device=pooled.device)
        for row_ids, (group_kkt, group_util), parameter_weight, scale in groups:
            for start in range(0, len(row_ids), self.chunk):
                row = row_ids[start : start + self.chunk]
                terms = self._row_terms(row, m, prediction_leaf, ids, ranks, group_kkt, group_util)
                if train:
                    loss = parameter_weight * terms.parameter + scale * (
                        group_kkt * terms.kkt + group_util * terms.utility
                    )
                    (loss.sum() / rows).backward()
                sums[:3] += (
                    torch.stack(
                        [
                            parameter_weight * terms.parameter.sum(),
                            scale * terms.kkt.sum(),
                            scale * terms.utility.sum(),
                        ]
                    )
                    .detach()
                    .double()
                )
        if w_marginal > 0 and m > 1:
            marginal = self._marginal_terms(ids, prediction_leaf.view(b, m, -1))
            if train:
                (w_marginal * marginal.sum() / rows).backward()
            sums[3] += marginal.sum().detach().double()
        if train:
            # The chunks left ∂loss/∂Â in prediction_leaf.grad. One backward
            # pass carries it through ρ, the cumulative sum and φ.
            prediction.backward(prediction_leaf.grad)
        return sums, rows

    def _marginal_terms(self, ids: Tensor, prediction: Tensor) -> Tensor:
        """Return |S'|·‖ΔÂ − Δθ‖ for every pair of consecutive prefixes (S, S'), shape (b, m − 1).

        ``prediction`` (b, m, out) contains Â of every prefix. Pairs where either
        prefix lacks a class are zero, because θ = 0 there by convention
        rather than by training.
        """
        targets = self.targets[ids]  # (b, m, out)
        step_error = (prediction[:, 1:] - prediction[:, :-1]) - (targets[:, 1:] - targets[:, :-1])
        solved = self.solved[ids]
        both_solved = solved[:, 1:] & solved[:, :-1]
        n_fixed = 0 if self.fixed is None else len(self.fixed)
        # The larger prefix of the pair at position i (0-based) has i + 2 + n_fixed points.
        sizes = torch.arange(2, prediction.shape[1] + 1, device=prediction.device) + n_fixed
        marginal = step_error.norm(dim=-1) * sizes.to(prediction.dtype)
        return torch.where(both_solved, marginal, torch.zeros_like(marginal))

    def _row_terms(
        self,
        row: Tensor,
        m: int,
        prediction: Tensor,
        ids: Tensor,
        ranks: Tensor | None,
        w_kkt: float,
        w_util: float,
    ) -> LossTerms:
        """Return the loss terms of the prefixes ``row`` (flat indices into the batch's b·m)."""
        permutation, position = row // m, row % m
        masks = None
        if ranks is not None and (w_kkt > 0 or w_util > 0):
            masks = (ranks[permutation] <= position[:, None]).to(prediction.dtype)  # (c, n)
        batch_ids = ids[permutation]
        return surrogate_loss_terms(
            self.model,
            prediction[row],
            self.targets[batch_ids, position],
            self.X,
            self.y,
            masks,
            self.solved[batch_ids, position],
            None if self.train_loss_true is None else self.train_loss_true[batch_ids, position],
            w_kkt,
            w_util,
        )

    def train_epoch(
        self, optimizer: torch.optim.Optimizer, order: np.ndarray, epoch: int = 0
    ) -> dict[str, float | None]:
        """Run one pass over the training permutations in ``order`` and return mean loss terms.

        ``epoch`` (0-based) seeds the draw of regularised prefixes, so a run
        resumed from a checkpoint draws the same prefixes as an uninterrupted one.
        """
        self.network.train()
        weights = (self.w_kkt, self.w_util, self.w_marginal)
        rng = np.random.default_rng([self.config.seed, epoch, 1])
        totals = torch.zeros(len(TERM_NAMES), dtype=torch.float64)
        count = 0
        for start in range(0, len(order), self.config.batch_permutations):
            ids = torch.as_tensor(
                order[start : start + self.config.batch_permutations],
                device=self.permutations.device,
            )
            optimizer.zero_grad(set_to_none=True)
            sums, rows = self.batch_terms(ids, weights, train=True, rng=rng)
            sums = sums.cpu()
            if not torch.isfinite(sums).all():
                raise FloatingPointError(
                    f"surrogate loss became {sums.tolist()} (sums of the parameter, kkt, "
                    "utility and marginal terms); lower the learning rate 'lr' or the weights "
                    "'w_kkt', 'w_util' and 'w_marginal'"
                )
            optimizer.step()
            totals += sums
            count += rows
        return self._summary(totals / max(count, 1), weights)

    @torch.no_grad()
    def evaluate(self, ids: np.ndarray) -> dict[str, float | None]:
        """Return mean loss terms over all prefixes of permutations ``ids``.

        θ surrogates get every term computed, so that the curve shows,
        for example, ParaLearn's KKT norm even though it does not train on it.
        With ``config.regulariser_prefixes`` set, the KKT and utility terms
        are estimated on the same draw of prefixes at every call, so the
        validation loss of successive epochs stays comparable.
        """
        self.network.eval()
        weights = (0.0, 0.0, 0.0) if self.method == "utllearn" else (1.0, 1.0, 1.0)
        rng = np.random.default_rng([self.config.seed, 0, 2])
        totals = torch.zeros(len(TERM_NAMES), dtype=torch.float64)
        count = 0
        for start in range(0, len(ids), self.config.batch_permutations):
            batch = torch.as_tensor(
                ids[start : start + self.config.batch_permutations], device=self.permutations.device
            )
            sums, rows = self.batch_terms(batch, weights, train=False, rng=rng)
            totals += sums.cpu()
            count += rows
        return self._summary(totals / max(count, 1), weights)

    def _summary(
        self, means: Tensor, computed: tuple[float, float, float]
    ) -> dict[str, float | None]:
        parameter, kkt, utility, marginal = (float(value) for value in means)
        return {
            "loss": parameter
            + self.w_kkt * kkt
            + self.w_util * utility
            + self.w_marginal * marginal,
            "parameter": parameter,
            "kkt": kkt if computed[0] > 0 else None,
            "utility": utility if computed[1] > 0 else None,
            "marginal": marginal if computed[2] > 0 else None,
        }


def _make_targets(
    model: BaseModel,
    method: str,
    theta: np.ndarray,
    X_test: np.ndarray | None,
    y_test: np.ndarray | None,
) -> np.ndarray:
    """Return the training targets (T, m, out): θ itself or its test utility."""
    if method != "utllearn":
        return theta
    if X_test is None or y_test is None:
        raise ValueError(
            "method 'utllearn' trains on the test utility of θ, so X_test and y_test are required"
        )
    T, m, p = theta.shape
    utility = model.numpy_eval("utility", theta.reshape(-1, p), X_test, y_test)
    return np.asarray(utility).reshape(T, m, 1)


def _prefix_train_losses(
    model: BaseModel,
    theta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    permutations: np.ndarray,
    fixed,
) -> np.ndarray:
    """Return U(S; θ_S), the mean training loss of the solver's θ on each prefix, shape (T, m)."""
    T, m, p = theta.shape
    Xt, yt = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.long)
    fixed_t = None if fixed is None or len(fixed) == 0 else torch.as_tensor(fixed, dtype=torch.long)
    ranks = permutation_ranks(
        torch.as_tensor(permutations, dtype=torch.long), len(y), fixed_t
    )  # (T, n)
    flat_theta = torch.as_tensor(theta, dtype=torch.float64).reshape(T * m, p)
    out = torch.empty(T * m, dtype=torch.float64)
    chunk = max(1, CHUNK_ELEMENTS // (len(y) * model.n_rows))
    with torch.no_grad():
        for start in range(0, T * m, chunk):
            row = torch.arange(start, min(T * m, start + chunk))
            masks = (ranks[row // m] <= (row % m)[:, None]).to(torch.float64)  # (c, n)
            out[start : start + len(row)] = model.train_loss(flat_theta[row], Xt, yt, masks)
    return out.reshape(T, m).numpy()


def _check_samples(model: BaseModel, X, y, permutations, theta, one_class, fixed) -> None:
    n = len(y)
    if X.shape != (n, model.n_features):
        raise ValueError(
            f"X must have shape ({n}, {model.n_features}) for this base model, got {X.shape}"
        )
    if permutations.ndim != 2 or permutations.shape[1] == 0:
        raise ValueError(
            f"permutations must have shape (T, m) with m >= 1, got {permutations.shape}"
        )
    T, m = permutations.shape
    if permutations.min() < 0 or permutations.max() >= n:
        raise ValueError(
            f"permutations must index the {n} points of X, "
            f"got values {permutations.min()}..{permutations.max()}"
        )
    if theta.shape != (T, m, model.n_params):
        raise ValueError(
            f"theta must have shape (T, m, p) = ({T}, {m}, {model.n_params}) to match the "
            f"permutations and base model '{model.name}', got {theta.shape}"
        )
    if not np.all(np.isfinite(theta)):
        raise ValueError(
            "theta contains NaN or infinite values; resample the permutations that hold them"
        )
    if one_class.shape != (T, m):
        raise ValueError(f"one_class must have shape ({T}, {m}), got {one_class.shape}")
    if fixed is not None and len(fixed) and np.isin(fixed, permutations).any():
        raise ValueError("fixed points must not appear in the permutations")


def fit_surrogate(
    model: BaseModel,
    X: np.ndarray,
    y: np.ndarray,
    permutations: np.ndarray,
    theta: np.ndarray,
    *,
    method: str = "modelpred",
    config: SurrogateConfig | None = None,
    one_class: np.ndarray | None = None,
    converged: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    on_epoch_end: EpochCallback | None = None,
    metadata: dict[str, Any] | None = None,
    remove_checkpoint: bool = True,
    cpu_threads: int | None = 1,
) -> TrainingResult:
    """Train a DeepSets surrogate on the prefixes of sampled permutations.

    Parameters
    ----------
    model : BaseModel
        The base model A whose θ the samples hold.
    X, y : ndarray, shapes (n, d) and (n,)
        The points the permutations index (the dataset's train split).
    permutations : ndarray of int, shape (T, m)
    theta : ndarray, shape (T, m, p)
        ``theta[t, i]`` = A(fixed ∪ permutations[t, :i+1]).
    method : str
        ``"modelpred"``, ``"paralearn"`` or ``"utllearn"``.
    config : SurrogateConfig, optional
        Hyper-parameters; defaults to ``SurrogateConfig()``.
    one_class : ndarray of bool, shape (T, m), optional
        Prefixes lacking a class (θ = 0 by convention). Computed from ``y``
        when omitted. Their KKT term is not trained on.
    converged : ndarray of bool, shape (T, m), optional
        Solver status; unconverged prefixes are trained on as they are and
        counted in a warning.
    fixed : ndarray of int, optional
        Points in every subset.
    X_test, y_test : ndarray, optional
        The test split; required for ``utllearn``, whose target is the test
        utility of θ, and recorded (as a sha256) for the others.
    checkpoint_path : path, optional
        Written atomically after every epoch and removed at the end. If it
        exists and matches this run's inputs and config, training resumes
        from it and ends with the weights an uninterrupted run would have.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, record)`` after each epoch's checkpoint.
    metadata : dict, optional
        Extra entries for the surrogate's sidecar (e.g. ``dataset``).
    remove_checkpoint : bool
        Delete the checkpoint when training ends. Callers that write output
        files pass False and delete it once the outputs exist, so a job killed
        in between still resumes.
    cpu_threads : int or None
        Torch CPU threads while training on the CPU, restored afterwards.
        The default of one thread makes the weights bitwise identical on any
        machine with the same software, because multi-threaded reductions
        sum in an order that depends on the thread count. None keeps torch's
        current setting, which is faster on many cores but reproducible only
        for that thread count.

    Returns
    -------
    TrainingResult
    """
    started = time.perf_counter()
    method = check_method(method)
    config = config or SurrogateConfig()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    permutations = np.asarray(permutations, dtype=np.int64)
    theta = np.asarray(theta, dtype=np.float64)
    fixed = None if fixed is None else np.asarray(fixed, dtype=np.int64)
    if one_class is None:
        one_class = (class_counts(y, permutations, model.n_classes, fixed) == 0).any(axis=-1)
    one_class = np.asarray(one_class, dtype=bool)
    _check_samples(model, X, y, permutations, theta, one_class, fixed)
    if converged is not None and not np.all(converged):
        logger.warning(
            "%d of %d prefixes did not converge in sampling; training on their θ as stored",
            int(np.size(converged) - np.count_nonzero(converged)),
            np.size(converged),
        )
    device = resolve_device(config.device)
    if method == "paralearn" and (config.w_kkt or config.w_util or config.w_marginal):
        logger.info(
            "method 'paralearn' trains with the parameter term only, so the config's "
            "w_kkt, w_util and w_marginal are ignored"
        )

    with _torch_threads(cpu_threads if device.type == "cpu" else None):
        # Everything that depends only on the samples is computed once, in float64.
        targets = _make_targets(model, method, theta, X_test, y_test)
        train_loss_true = None
        if method != "utllearn":
            train_loss_true = _prefix_train_losses(model, theta, X, y, permutations, fixed)
        train_ids, val_ids = split_permutations(len(permutations), config.val_fraction, config.seed)
        pool_size = permutations.shape[1] + (0 if fixed is None else len(fixed))
        network = _init_network(model, config, targets[train_ids], pool_size).to(device)
        trainer = _PrefixTrainer(
            model,
            network,
            method,
            config,
            device,
            X,
            y,
            permutations,
            targets,
            solved=~one_class,
            train_loss_true=train_loss_true,
            fixed=fixed,
        )
        fingerprint = _digest(X, y, permutations, theta, fixed) + json.dumps(
            {"method": method, "model": model.config(), **config.to_dict(), "device": None},
            sort_keys=True,
        )
        state = _run_epochs(trainer, train_ids, val_ids, checkpoint_path, fingerprint, on_epoch_end)

    seconds = time.perf_counter() - started
    w_kkt, w_util, w_marginal = loss_weights(method, config)
    info = {
        **(metadata or {}),
        "config": config.to_dict(),
        "w_kkt": w_kkt,
        "w_util": w_util,
        "w_marginal": w_marginal,
        "best_epoch": state.best_epoch,
        "best_loss": state.best_loss if math.isfinite(state.best_loss) else None,
        "epochs_run": state.epoch,
        "stopped_early": state.epoch < config.epochs,
        "history": state.history,
        "n_permutations": int(len(permutations)),
        "prefix_length": int(permutations.shape[1]),
        "train_permutations": train_ids.tolist(),
        "val_permutations": val_ids.tolist(),
        "fixed": [] if fixed is None else fixed.tolist(),
        "device": str(device),
        "cpu_threads": cpu_threads if device.type == "cpu" else None,
        "seconds": seconds,
        "test_sha256": None if X_test is None else array_digest(X_test, y_test),
        "zero_theta_utility": None
        if X_test is None
        else float(model.numpy_eval("utility", np.zeros(model.n_params), X_test, y_test)),
    }
    surrogate = Surrogate(network.cpu(), model, method, info)
    if remove_checkpoint and checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)
    return TrainingResult(
        surrogate=surrogate,
        history=state.history,
        best_epoch=state.best_epoch,
        best_loss=state.best_loss,
        stopped_early=state.epoch < config.epochs,
        train_permutations=train_ids,
        val_permutations=val_ids,
        seconds=seconds,
    )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` torch CPU threads (unchanged if None), then restore."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_epochs(
    trainer: _PrefixTrainer,
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    checkpoint_path: str | os.PathLike | None,
    fingerprint: str,
    on_epoch_end: EpochCallback | None,
) -> _TrainingState:
    """Train until the epoch limit or patience runs out; leave the best weights in the network."""
    network, config = trainer.network, trainer.config
    optimizer = _make_optimizer(network, config)
    state = _TrainingState()
    checkpoint = None if checkpoint_path is None else Path(checkpoint_path)
    if checkpoint is not None and checkpoint.exists():
        initial = _clone_state(network)
        resumed = _TrainingState.resume(checkpoint, fingerprint, network, optimizer)
        if resumed is None:
            # A checkpoint that failed half-way through loading may have
            # overwritten some weights, so the fresh start restores them.
            network.load_state_dict(initial)
            optimizer = _make_optimizer(network, config)
        else:
            state = resumed

    logger.info(
        "training %s surrogate of '%s' on %s: %d training and %d validation permutations "
        "of %d points, %d weights, w_kkt=%g, w_util=%g, w_marginal=%g",
        trainer.method,
        trainer.model.name,
        trainer.X.device,
        len(train_ids),
        len(val_ids),
        trainer.prefix_length,
        sum(parameter.numel() for parameter in network.parameters()),
        trainer.w_kkt,
        trainer.w_util,
        trainer.w_marginal,
    )
    while state.epoch < config.epochs and state.epochs_since_best < config.patience:
        epoch_start = time.perf_counter()
        order = epoch_order(train_ids, config.seed, state.epoch)
        train = trainer.train_epoch(optimizer, order, state.epoch)
        val = trainer.evaluate(val_ids) if len(val_ids) else None
        metric = (val or train)["loss"]
        state.epoch += 1
        if not math.isfinite(metric):
            raise FloatingPointError(
                f"epoch {state.epoch}: loss is {metric}; lower the learning rate 'lr'"
            )
        if metric < state.best_loss:
            state.best_loss, state.best_epoch, state.epochs_since_best = metric, state.epoch, 0
            state.best_network = _clone_state(network)
        else:
            state.epochs_since_best += 1
        record = _epoch_record(state.epoch, train, val, time.perf_counter() - epoch_start)
        state.history.append(record)
        _log_epoch(record, config.epochs)
        if checkpoint is not None:
            state.save(checkpoint, fingerprint, network, optimizer)
        if on_epoch_end is not None:
            on_epoch_end(state.epoch, record)

    if state.best_network is not None:
        network.load_state_dict(state.best_network)
    logger.info(
        "finished after %d epochs (%s); best epoch %d with %s loss %.6g",
        state.epoch,
        "early stop" if state.epoch < config.epochs else "epoch limit",
        state.best_epoch,
        "validation" if len(val_ids) else "training",
        state.best_loss,
    )
    return state


def _make_optimizer(network: torch.nn.Module, config: SurrogateConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _init_network(
    model: BaseModel, config: SurrogateConfig, targets: np.ndarray, pool_size: int
) -> DeepSets:
    """Build the network on the CPU with weights drawn from ``config.seed`` alone."""
    n_outputs = targets.shape[-1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = DeepSets(
            model.n_features, model.n_classes, n_outputs, config.hidden, config.layers
        )
    network.set_normalisation(pool_size, torch.as_tensor(targets))
    return network


def _clone_state(network: torch.nn.Module) -> dict[str, Tensor]:
    return {key: value.detach().clone() for key, value in network.state_dict().items()}


def _epoch_record(epoch: int, train: dict, val: dict | None, seconds: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": train["loss"],
        "val_loss": None if val is None else val["loss"],
    }
    for name in TERM_NAMES:
        record[f"train_{name}"] = train[name]
        record[f"val_{name}"] = None if val is None else val[name]
    record["seconds"] = seconds
    return record


def _log_epoch(record: dict[str, Any], epochs: int) -> None:
    def terms(prefix: str) -> str:
        parts = [
            f"{name} {record[f'{prefix}_{name}']:.4g}"
            for name in TERM_NAMES
            if record[f"{prefix}_{name}"] is not None
        ]
        return ", ".join(parts)

    message = (
        f"epoch {record['epoch']}/{epochs}: train {record['train_loss']:.5g} ({terms('train')})"
    )
    if record["val_loss"] is not None:
        message += f", val {record['val_loss']:.5g} ({terms('val')})"
    logger.info("%s, %.2f s", message, record["seconds"])


@dataclass
class _TrainingState:
    """Everything besides network and optimiser that a resumed run needs."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    epochs_since_best: int = 0
    best_network: dict[str, Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def resume(
        cls,
        path: Path,
        fingerprint: str,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
    ) -> _TrainingState | None:
        """Load a checkpoint into ``network`` and ``optimizer``; None if it is unusable."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except (
            RuntimeError,
            pickle.UnpicklingError,
            EOFError,
            zipfile.BadZipFile,
            ValueError,
        ) as error:
            logger.warning("checkpoint %s is unreadable (%s); training from scratch", path, error)
            return None
        if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
            logger.warning(
                "checkpoint %s belongs to other inputs or settings; training from scratch", path
            )
            return None
        device = next(network.parameters()).device
        try:
            network.load_state_dict(saved["network"])
            optimizer.load_state_dict(saved["optimizer"])
            best = saved["best_network"]
            state = cls(
                epoch=int(saved["epoch"]),
                best_loss=float(saved["best_loss"]),
                best_epoch=int(saved["best_epoch"]),
                epochs_since_best=int(saved["epochs_since_best"]),
                best_network=None
                if best is None
                else {key: value.to(device) for key, value in best.items()},
                history=list(saved["history"]),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            logger.warning("checkpoint %s is incomplete (%s); training from scratch", path, error)
            return None
        logger.info("resuming from checkpoint %s after epoch %d", path, state.epoch)
        return state

    def save(
        self,
        path: Path,
        fingerprint: str,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        """Write the checkpoint atomically; it contains only tensors, strings and numbers."""
        payload = {
            "format_version": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "epoch": self.epoch,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "epochs_since_best": self.epochs_since_best,
            "history": copy.deepcopy(self.history),
            "network": {key: value.cpu() for key, value in network.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "best_network": None
            if self.best_network is None
            else {k: v.cpu() for k, v in self.best_network.items()},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
