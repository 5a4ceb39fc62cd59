"""Permutation sampling of trained models (Algorithm 1 of the ModelPred paper).

For t = 1..T a uniformly random permutation π_t of the n training points is
drawn, and the base model is trained on every prefix π_t[:i], i = 1..n. The
pairs (prefix, θ) are the surrogate's training set.

Reproducibility
---------------
Permutation t comes from a generator seeded by ``(seed, t)`` alone. The
solver handles permutations in fixed blocks of ``block`` consecutive indices,
so a permutation's θ does not depend on how the T permutations are split into
shards or on how many jobs run them. The solver runs torch on one thread for
the same reason, because multi-threaded reductions may sum in another order;
shards provide the parallelism.

Subgroups
---------
A dataset may declare a subgroup (the 500 female records of Adult). Its
permutations then run over the subgroup only, and every subset also contains
the fixed rest of the training set, stored as ``fixed``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import io
from .models import BaseModel

log = logging.getLogger(__name__)

DEFAULT_SUBSETS = 15000
DEFAULT_BLOCK = 25
SAMPLE_ARRAYS = ("permutations", "theta", "converged", "one_class", "kkt_residual")


def n_permutations(n: int, subsets: int = DEFAULT_SUBSETS) -> int:
    """Return T = ⌈subsets / n⌉, the permutations needed for ``subsets`` prefixes."""
    if n < 1:
        raise ValueError(f"need at least one point to permute, got n = {n}")
    return math.ceil(subsets / n)


def draw_permutation(seed: int, t: int, items: np.ndarray) -> np.ndarray:
    """Return permutation ``t`` of ``items``, drawn from a generator seeded by (seed, t)."""
    return np.random.default_rng([int(seed), int(t)]).permutation(items)


def shard_indices(n_perms: int, shards: int, shard: int, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """Return the permutation indices that shard ``shard`` of ``shards`` computes.

    Shards receive whole blocks of ``block`` consecutive permutations, so a
    permutation is always solved in the same block whatever ``shards`` is.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1}, got {shard}")
    n_blocks = math.ceil(n_perms / block)
    mine = np.array_split(np.arange(n_blocks), shards)[shard]
    if len(mine) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(mine[0] * block, min((mine[-1] + 1) * block, n_perms), dtype=np.int64)


def permuted_items(dataset: io.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return (items to permute, fixed train indices) for a dataset.

    Permutations run over all training points, or over the subgroup with the
    rest fixed, and never include the held-out points.
    """
    n = len(dataset.train)
    subgroup = dataset.subgroup()
    if subgroup is None:
        # Held-out points (a label-noise variant's flipped points) are neither
        # permuted nor fixed, so no sampled subset contains them.
        return np.setdiff1d(np.arange(n, dtype=np.int64), dataset.holdout()), np.zeros(
            0, dtype=np.int64
        )
    subgroup = np.asarray(subgroup, dtype=np.int64)
    if subgroup.min() < 0 or subgroup.max() >= n or len(np.unique(subgroup)) != len(subgroup):
        raise ValueError(
            f"subgroup of dataset '{dataset.name}' must hold distinct train indices 0..{n - 1}"
        )
    fixed = np.setdiff1d(np.arange(n), subgroup)
    return subgroup, fixed


def sample_permutations(
    model: BaseModel,
    dataset: io.Dataset,
    indices: Sequence[int],
    seed: int,
    block: int = DEFAULT_BLOCK,
    progress_file=None,
) -> dict[str, np.ndarray]:
    """Solve every prefix of the permutations numbered ``indices``.

    Parameters
    ----------
    model : BaseModel
        The learning algorithm A.
    dataset : Dataset
        Only its train split is used; pool and test points are never sampled.
    indices : sequence of int
        Global permutation numbers t; permutation t is ``draw_permutation(seed, t, items)``.
    seed : int
        The sampling seed.
    block : int
        Permutations solved together; must match across shards of one run.
    progress_file : file-like, optional
        Where a tqdm progress bar is written (a rule's log file).

    Returns
    -------
    dict
        ``index`` (T',), ``permutations`` int32 (T', m), ``theta`` (T', m, p),
        ``converged``, ``one_class`` bool (T', m), ``kkt_residual`` (T', m)
        and ``fixed`` int32.
    """
    items, fixed = permuted_items(dataset)
    indices = np.asarray(indices, dtype=np.int64)
    m, p = len(items), model.n_params
    out = {
        "index": indices,
        "permutations": np.zeros((len(indices), m), dtype=np.int32),
        "theta": np.zeros((len(indices), m, p)),
        "converged": np.zeros((len(indices), m), dtype=bool),
        "one_class": np.zeros((len(indices), m), dtype=bool),
        "kkt_residual": np.zeros((len(indices), m)),
        "fixed": fixed.astype(np.int32),
    }
    X, y = dataset.train.X, dataset.train.y
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _solve_blocks(model, X, y, items, fixed, indices, seed, block, out, progress_file)
    finally:
        torch.set_num_threads(threads)
    n_bad = int((~out["converged"]).sum())
    if n_bad:
        log.warning(
            "%d of %d prefix fits did not meet the solver tolerance (largest KKT residual %.3g); "
            "they are marked in 'converged'",
            n_bad,
            out["converged"].size,
            float(out["kkt_residual"].max()),
        )
    return out


def _solve_blocks(model, X, y, items, fixed, indices, seed, block, out, progress_file) -> None:
    m = len(items)
    with tqdm(
        total=len(indices) * m, desc="prefix fits", unit="fit", file=progress_file, mininterval=5
    ) as bar:
        # Blocks are aligned to global permutation numbers, so the batch a
        # permutation is solved in never depends on the shard layout.
        block_ids = indices // block
        for block_id in np.unique(block_ids):
            rows = np.nonzero(block_ids == block_id)[0]
            perms = np.stack([draw_permutation(seed, t, items) for t in indices[rows]])
            done = [0]

            def advance(prefixes: int, rows=rows, done=done) -> None:
                bar.update((prefixes - done[0]) * len(rows))
                done[0] = prefixes

            fits = model.fit_prefixes(X, y, perms, fixed=fixed, progress=advance)
            out["permutations"][rows] = perms
            out["theta"][rows] = fits.theta
            out["converged"][rows] = fits.converged
            out["one_class"][rows] = fits.one_class
            out["kkt_residual"][rows] = fits.kkt_residual


def sample_attrs(model: BaseModel, seed: int, block: int, n_perms: int) -> dict:
    """Return the root attributes of a samples file."""
    return {
        "base_model": model.name,
        "lam": model.lam,
        "seed": int(seed),
        "param_layout": model.param_layout,
        "n_permutations": int(n_perms),
        "block": int(block),
        "model_config": json.dumps(model.config(), sort_keys=True),
    }


def write_shard(path: str | os.PathLike, samples: dict[str, np.ndarray], attrs: dict) -> None:
    """Write one shard's samples (see :func:`sample_permutations`) atomically."""
    io.write_arrays(path, samples, attrs)


def merge_shards(
    shard_paths: Sequence[str | os.PathLike], out_path: str | os.PathLike, extra_attrs=None
) -> None:
    """Merge shard files into ``samples/{dataset}/{model}.h5`` ordered by permutation number.

    The merged file keeps the first shard's settings. The shards' own
    ``input_sha256`` (the data they were solved on) becomes
    ``shard_input_sha256``, and the other attributes that describe the shard
    job (:data:`~modelpred.io.JOB_PROVENANCE_KEYS`) are dropped, so that
    ``extra_attrs`` can describe the merge job instead.

    Raises
    ------
    FormatError
        If the shards disagree on their settings or input checksums, or do
        not cover 0..T-1 exactly once.
    """
    parts = [io.read_arrays(path, ("index", "fixed", *SAMPLE_ARRAYS)) for path in shard_paths]
    attrs = dict(parts[0][1])
    for path, (_, other) in zip(shard_paths, parts, strict=True):
        for key in ("base_model", "lam", "seed", "n_permutations", "block", "input_sha256"):
            if other.get(key) != attrs.get(key):
                raise io.FormatError(
                    f"{path}: '{key}' = {other.get(key)!r} differs from "
                    f"the first shard's {attrs.get(key)!r}; rerun the sampling shards"
                )
    index = np.concatenate([arrays["index"] for arrays, _ in parts])
    n_perms = int(attrs["n_permutations"])
    if not np.array_equal(np.sort(index), np.arange(n_perms)):
        raise io.FormatError(
            f"shards cover permutations {sorted(set(index.tolist()))[:10]}... "
            f"but 0..{n_perms - 1} are expected "
            "exactly once; rerun the sampling shards"
        )
    order = np.argsort(index)
    merged = {
        name: np.concatenate([arrays[name] for arrays, _ in parts])[order] for name in SAMPLE_ARRAYS
    }
    if len(parts[0][0]["fixed"]):
        merged["fixed"] = parts[0][0]["fixed"]
    if "input_sha256" in attrs:
        attrs["shard_input_sha256"] = attrs["input_sha256"]
    attrs = {
        key: value
        for key, value in attrs.items()
        if key != "format_version" and key not in io.JOB_PROVENANCE_KEYS
    }
    attrs.update(extra_attrs or {})
    io.write_arrays(out_path, merged, attrs)
    log.info(
        "merged %d shards into %s: %d permutations of %d points",
        len(parts),
        out_path,
        n_perms,
        merged["permutations"].shape[1],
    )


def read_samples(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a merged samples file; ``fixed`` is an empty array when absent."""
    arrays, attrs = io.read_arrays(path, SAMPLE_ARRAYS)
    with io.open_checked(path) as handle:
        arrays["fixed"] = handle["fixed"][...] if "fixed" in handle else np.zeros(0, dtype=np.int32)
    return arrays, attrs
