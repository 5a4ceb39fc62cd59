"""Inference with a trained surrogate, and its files.

A :class:`Surrogate` binds a trained :class:`~modelpred.surrogate.network.DeepSets`
to its base model and predicts for three kinds of input:

- subsets given as masks over one array of points (train and pool stacked),
- raw sets (X, y) that may hold points the surrogate never saw,
- all prefixes of given permutations, from one cumulative sum of φ.

Subsets that lack a class get exactly θ = 0 (or the test utility of θ = 0
for a utility surrogate) by default, because the base models define A(S) that
way, so a prediction there would only add error. Pass
``one_class_as_zero=False`` to get the raw network output instead.

Files
-----
``{name}.pt`` contains the network's state_dict (loadable with
``torch.load(..., weights_only=True)``) and ``{name}.json`` beside it the
sidecar: hyper-parameters, base-model config, dataset, method, training curve
and everything :func:`load_surrogate` needs to rebuild the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..io import FORMAT_VERSION, FormatError, atomic_path, write_json
from ..models import BaseModel, model_from_config
from .config import check_method
from .network import DeepSets, encode_elements, prefix_pool

logger = logging.getLogger(__name__)

CHUNK_ELEMENTS = 1 << 23
"""Upper bound on subsets × points handled at once, to bound memory."""

REQUIRED_SIDECAR_KEYS = (
    "format_version",
    "method",
    "base_model",
    "n_features",
    "n_classes",
    "n_outputs",
    "config",
)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the torch device for ``"auto"`` (``cuda`` when available, else ``cpu``) or a name."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def array_digest(X: np.ndarray, y: np.ndarray) -> str:
    """Return the sha256 of a point set's float64 features and int64 labels."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return digest.hexdigest()


def sidecar_path(pt_path: str | os.PathLike) -> Path:
    """Return the JSON sidecar path that belongs to a surrogate ``.pt`` file."""
    return Path(pt_path).with_suffix(".json")


class Surrogate:
    """A trained Â bound to its base model.

    Parameters
    ----------
    network : DeepSets
        The trained network; its output size is p for ``modelpred`` and
        ``paralearn`` and 1 for ``utllearn``.
    model : BaseModel
        The base model whose θ (or utility) the network predicts.
    method : str
        ``"modelpred"``, ``"paralearn"`` or ``"utllearn"``.
    metadata : dict, optional
        The sidecar contents (hyper-parameters, training curve, ...).
    one_class_as_zero : bool
        Return θ = 0 (utility of θ = 0) for subsets lacking a class, as the
        base models do, instead of the network's output.
    """

    def __init__(
        self,
        network: DeepSets,
        model: BaseModel,
        method: str,
        metadata: dict[str, Any] | None = None,
        one_class_as_zero: bool = True,
    ):
        self.method = check_method(method)
        expected = 1 if method == "utllearn" else model.n_params
        if network.n_outputs != expected:
            raise ValueError(
                f"a '{method}' surrogate of base model '{model.name}' needs {expected} outputs, "
                f"but the network has {network.n_outputs}"
            )
        if (network.n_features, network.n_classes) != (model.n_features, model.n_classes):
            raise ValueError(
                f"network expects d={network.n_features}, K={network.n_classes} but the base model "
                f"has d={model.n_features}, K={model.n_classes}"
            )
        self.network = network.eval()
        self.model = model
        self.metadata = dict(metadata or {})
        self.one_class_as_zero = bool(one_class_as_zero)

    # ------------------------------------------------------------ properties
    @property
    def predicts_utility(self) -> bool:
        """Whether the network outputs a utility (``utllearn``) rather than θ."""
        return self.method == "utllearn"

    @property
    def device(self) -> torch.device:
        return self.network.target_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.network.target_mean.dtype

    def to(self, device: str | torch.device) -> Surrogate:
        """Move the network to ``device`` (``"auto"`` allowed) and return self."""
        self.network.to(resolve_device(device))
        return self

    # ------------------------------------------------------------ helpers
    def _points(self, X, y) -> tuple[Tensor, Tensor]:
        # np.array copies, so read-only inputs (h5py, np.load) convert without a warning.
        X = X if isinstance(X, Tensor) else torch.from_numpy(np.array(X))
        y = y if isinstance(y, Tensor) else torch.from_numpy(np.array(y))
        d, K = self.model.n_features, self.model.n_classes
        if X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"X must have shape (n, {d}) for this surrogate, got {tuple(X.shape)}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {tuple(y.shape)}")
        if not torch.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values; clean them before predicting")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= K):
            raise ValueError(
                f"labels must be class indices 0..{K - 1}, "
                f"got values {int(y.min())}..{int(y.max())}"
            )
        return X.to(self.device, self.dtype), y.to(self.device, torch.long)

    def _finish(self, outputs: Tensor, class_counts: Tensor) -> np.ndarray:
        """Apply the one-class rule and return float64 NumPy (θ: (..., p); utility: (...))."""
        outputs = outputs.to(torch.float64)
        if self.one_class_as_zero:
            one_class = (class_counts == 0).any(dim=-1)  # (...)
            fill = self._one_class_output().to(outputs)
            outputs = torch.where(one_class[..., None], fill, outputs)
        if self.predicts_utility:
            outputs = outputs[..., 0]
        return outputs.cpu().numpy()

    def _one_class_output(self) -> Tensor:
        if not self.predicts_utility:
            return torch.zeros(self.model.n_params, dtype=torch.float64)
        value = self.metadata.get("zero_theta_utility")
        if value is None:
            raise ValueError(
                "this utility surrogate has no 'zero_theta_utility' in its metadata, so the "
                "utility of a subset lacking a class is unknown; retrain it or pass "
                "one_class_as_zero=False"
            )
        return torch.tensor([float(value)], dtype=torch.float64)

    # ------------------------------------------------------------ queries
    @torch.no_grad()
    def embed(self, X, y) -> Tensor:
        """Return φ of every point, shape (n, h), as a tensor on the surrogate's device."""
        X, y = self._points(X, y)
        return self.network.embed(encode_elements(X, y, self.model.n_classes))

    @torch.no_grad()
    def predict(self, X, y, masks) -> np.ndarray:
        """Predict for subsets given as masks over one array of points.

        Parameters
        ----------
        X : array, shape (N, d)
            All candidate points, e.g. train and pool stacked.
        y : array of int, shape (N,)
        masks : array of bool or 0/1, shape (B, N)
            Row b selects subset S_b.

        Returns
        -------
        ndarray, shape (B, p) for θ surrogates, (B,) for ``utllearn``
        """
        X, y = self._points(X, y)
        masks = masks if isinstance(masks, Tensor) else torch.from_numpy(np.array(masks))
        if masks.ndim != 2 or masks.shape[1] != len(y):
            raise ValueError(
                f"masks must have shape (B, {len(y)}) to match X, got {tuple(masks.shape)}"
            )
        masks = masks.to(self.device, self.dtype)
        embeddings = self.network.embed(encode_elements(X, y, self.model.n_classes))  # (N, h)
        onehot = F.one_hot(y, self.model.n_classes).to(self.dtype)  # (N, K)
        chunk = max(1, CHUNK_ELEMENTS // max(1, len(y)))
        outputs, counts = [], []
        for start in range(0, len(masks), chunk):
            block = masks[start : start + chunk]  # (b, N)
            outputs.append(self.network.readout(block @ embeddings))  # (b, out)
            counts.append(block @ onehot)  # (b, K)
        if not outputs:
            return np.zeros((0,) if self.predicts_utility else (0, self.model.n_params))
        return self._finish(torch.cat(outputs), torch.cat(counts))

    @torch.no_grad()
    def predict_sets(self, sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Predict for raw sets [(X_1, y_1), ..., (X_B, y_B)] of any sizes.

        The points need not have been seen in training. φ runs once over all
        points of all sets and the embeddings are summed per set.

        Returns
        -------
        ndarray, shape (B, p) for θ surrogates, (B,) for ``utllearn``
        """
        if len(sets) == 0:
            return np.zeros((0,) if self.predicts_utility else (0, self.model.n_params))
        parts = [self._points(X, y) for X, y in sets]
        X = torch.cat([part[0] for part in parts])  # (N, d)
        y = torch.cat([part[1] for part in parts])  # (N,)
        sizes = torch.tensor([len(part[1]) for part in parts], device=self.device)
        set_index = torch.repeat_interleave(
            torch.arange(len(parts), device=self.device), sizes
        )  # (N,)
        embeddings = self.network.embed(encode_elements(X, y, self.model.n_classes))  # (N, h)
        pooled = embeddings.new_zeros(len(parts), embeddings.shape[1]).index_add_(
            0, set_index, embeddings
        )
        onehot = F.one_hot(y, self.model.n_classes).to(self.dtype)
        counts = onehot.new_zeros(len(parts), self.model.n_classes).index_add_(0, set_index, onehot)
        return self._finish(self.network.readout(pooled), counts)

    @torch.no_grad()
    def predict_prefixes(self, X, y, permutations, fixed=None) -> np.ndarray:
        """Predict for all prefixes of the given permutations from one cumulative sum.

        Parameters
        ----------
        X, y : arrays, shapes (N, d) and (N,)
        permutations : array of int, shape (T, m)
            Each row orders m distinct indices into ``X``.
        fixed : array of int, shape (f,), optional
            Indices in every subset.

        Returns
        -------
        ndarray, shape (T, m, p) for θ surrogates, (T, m) for ``utllearn``
            Entry [t, i] is the prediction for ``fixed`` plus
            ``permutations[t, :i+1]``.
        """
        X, y = self._points(X, y)
        permutations = torch.from_numpy(np.array(permutations)).to(self.device).long()
        if permutations.ndim != 2:
            raise ValueError(
                f"permutations must have shape (T, m), got {tuple(permutations.shape)}"
            )
        if permutations.numel() and (
            int(permutations.min()) < 0 or int(permutations.max()) >= len(y)
        ):
            raise ValueError(f"permutations must index the {len(y)} points of X")
        fixed_t = (
            None if fixed is None else torch.from_numpy(np.array(fixed)).to(self.device).long()
        )
        embeddings = self.network.embed(encode_elements(X, y, self.model.n_classes))  # (N, h)
        onehot = F.one_hot(y, self.model.n_classes).to(self.dtype)  # (N, K)
        outputs = self.network.readout(
            prefix_pool(embeddings, permutations, fixed_t)
        )  # (T, m, out)
        counts = prefix_pool(onehot, permutations, fixed_t)  # (T, m, K)
        return self._finish(outputs, counts)

    def utility_from_theta(self, theta: np.ndarray, X_test, y_test) -> np.ndarray:
        """Return the test utility (mean test loss) of θ (..., p), shape (...)."""
        theta = np.asarray(theta, dtype=np.float64)
        flat = theta.reshape(-1, self.model.n_params)
        values = self.model.numpy_eval(
            "utility", flat, np.asarray(X_test, dtype=np.float64), np.asarray(y_test)
        )
        return np.asarray(values).reshape(theta.shape[:-1])

    def check_test_set(self, X_test, y_test) -> None:
        """Raise ValueError if a utility surrogate was trained on another test set."""
        expected = self.metadata.get("test_sha256")
        if expected is not None and array_digest(X_test, y_test) != expected:
            raise ValueError(
                "this utility surrogate was trained on the utility of another test set "
                f"(sha256 {expected[:12]}...); pass the test split of the dataset it was trained on"
            )

    def predict_utility(self, X, y, masks, X_test, y_test) -> np.ndarray:
        """Return the predicted test utility of each masked subset, shape (B,).

        θ surrogates return the mean test loss of their θ̂ on (X_test,
        y_test). A ``utllearn`` surrogate returns its output, after checking
        that (X_test, y_test) is the test set it was trained on.
        """
        if self.predicts_utility:
            self.check_test_set(X_test, y_test)
            return self.predict(X, y, masks)
        return self.utility_from_theta(self.predict(X, y, masks), X_test, y_test)

    def predict_prefix_utility(self, X, y, permutations, X_test, y_test, fixed=None) -> np.ndarray:
        """Return the predicted test utility of all prefixes, shape (T, m)."""
        if self.predicts_utility:
            self.check_test_set(X_test, y_test)
            return self.predict_prefixes(X, y, permutations, fixed)
        return self.utility_from_theta(
            self.predict_prefixes(X, y, permutations, fixed), X_test, y_test
        )

    # ------------------------------------------------------------ files
    def save(self, pt_path: str | os.PathLike, sidecar: str | os.PathLike | None = None) -> None:
        """Write the state_dict to ``pt_path`` and the metadata to the JSON sidecar, atomically."""
        sidecar = sidecar_path(pt_path) if sidecar is None else Path(sidecar)
        state = {
            key: value.detach().cpu().clone() for key, value in self.network.state_dict().items()
        }
        with atomic_path(pt_path) as tmp:
            torch.save(state, tmp)
        metadata = {
            **self.metadata,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "base_model": self.model.config(),
            "n_features": self.model.n_features,
            "n_classes": self.model.n_classes,
            "n_params": self.model.n_params,
            "n_outputs": self.network.n_outputs,
        }
        write_json(sidecar, metadata)


def _read_sidecar(pt_path: Path) -> dict[str, Any]:
    path = sidecar_path(pt_path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: sidecar of surrogate {pt_path} not found; both files are written together, "
            "so delete the .pt and rerun its training rule (or train_surrogate)"
        )
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError(
            f"{path}: not valid JSON ({error}); delete it and {pt_path}, then retrain"
        ) from error
    missing = [key for key in REQUIRED_SIDECAR_KEYS if key not in metadata]
    if missing:
        raise FormatError(f"{path}: missing keys {missing}; delete it and {pt_path}, then retrain")
    if int(metadata["format_version"]) != FORMAT_VERSION:
        raise FormatError(
            f"{path}: format_version {metadata['format_version']} but this modelpred reads version "
            f"{FORMAT_VERSION}; delete it and {pt_path}, then retrain"
        )
    return metadata


def _read_state_dict(pt_path: Path) -> dict[str, Tensor]:
    if not pt_path.exists():
        raise FileNotFoundError(
            f"{pt_path}: surrogate file not found; run its training rule (or train_surrogate)"
        )
    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
    ) as error:
        raise FormatError(
            f"{pt_path}: not a readable torch state_dict ({type(error).__name__}: {error}); "
            "delete it and its .json sidecar, then retrain"
        ) from error
    if not isinstance(state, dict) or not all(
        isinstance(value, Tensor) for value in state.values()
    ):
        raise FormatError(
            f"{pt_path}: expected a state_dict of tensors; delete it and its sidecar, then retrain"
        )
    return state


def load_surrogate(
    pt_path: str | os.PathLike, device: str | torch.device = "cpu", one_class_as_zero: bool = True
) -> Surrogate:
    """Load a surrogate from its ``.pt`` state_dict and the ``.json`` sidecar beside it.

    Parameters
    ----------
    pt_path : path
        The ``.pt`` file; the sidecar is the same path with suffix ``.json``.
    device : str or torch.device
        Where to run inference (``"auto"`` picks ``cuda`` when available).
    one_class_as_zero : bool
        See :class:`Surrogate`.

    Raises
    ------
    FileNotFoundError
        If the ``.pt`` or its sidecar is missing.
    FormatError
        If either file is corrupt, of another format version, or the tensors
        do not have the shapes that the sidecar describes.
    """
    pt_path = Path(pt_path)
    metadata = _read_sidecar(pt_path)
    state = _read_state_dict(pt_path)
    model = model_from_config(metadata["base_model"])
    config = metadata["config"]
    network = DeepSets(
        metadata["n_features"],
        metadata["n_classes"],
        metadata["n_outputs"],
        config["hidden"],
        config["layers"],
    )
    expected = {key: tuple(value.shape) for key, value in network.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    if expected != found:
        problems = [
            f"{key}: expected {shape}, found {found.get(key, 'nothing')}"
            for key, shape in expected.items()
            if found.get(key) != shape
        ]
        problems += [f"{key}: unexpected tensor" for key in found if key not in expected]
        raise FormatError(
            f"{pt_path}: tensors do not match the network that its sidecar "
            f"{sidecar_path(pt_path).name} describes ({'; '.join(problems[:5])}); the two files "
            "come from different runs, so delete both and retrain"
        )
    network.load_state_dict(state)
    surrogate = Surrogate(network, model, metadata["method"], metadata, one_class_as_zero)
    return surrogate.to(device)
