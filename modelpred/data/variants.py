"""Label-noise variants of a dataset: ``spam-flip10``, ``mnist-flip20`` and the like.

A variant is a dataset of its own, with its own samples and surrogates, whose
training labels are partly flipped. Its splits equal the base dataset's,
because the split generator depends on the part of the name before the
first ``-``. Config entry ``label_noise``:

- ``fraction``: flip this fraction of the training labels, chosen at random;
- ``first``: flip the first this many training labels instead;
- ``seed``: seeds the choice of points and of the new labels (default 0);
- ``holdout``: leave the flipped points out of permutation sampling, so the
  surrogate never trains on them (the parameter-saliency experiment).

A flipped binary label becomes the other class; a flipped multi-class label
becomes a uniformly drawn different class. The root attribute ``flipped``
lists the flipped train indices and ``holdout`` those left out of sampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelpred import io
from modelpred.config import n_flipped

NOISE_STREAM = 0x666C6970
"""Seed word that keeps label-noise draws apart from split and sampling draws."""


def apply_label_noise(dataset: io.Dataset, noise: Mapping[str, Any], seed: int) -> io.Dataset:
    """Return ``dataset`` with some training labels flipped as ``noise`` specifies."""
    n = len(dataset.train)
    fraction, first = noise.get("fraction"), noise.get("first")
    if (fraction is None) == (first is None):
        raise ValueError(
            f"label_noise of dataset '{dataset.name}' must set exactly one of 'fraction' "
            f"and 'first', got {dict(noise)}"
        )
    rng = np.random.default_rng([int(seed), NOISE_STREAM, int(noise.get("seed", 0))])
    if first is not None:
        if not 0 < int(first) <= n:
            raise ValueError(
                f"label_noise.first must lie in 1..{n} (the training points), got {first}"
            )
        flipped = np.arange(int(first))
    else:
        if not 0 < float(fraction) < 1:
            raise ValueError(
                f"label_noise.fraction must lie strictly between 0 and 1, got {fraction}"
            )
        flipped = np.sort(rng.choice(n, size=n_flipped(n, noise), replace=False))

    y = dataset.train.y.copy()
    K = dataset.n_classes
    if K == 2:
        y[flipped] = 1 - y[flipped]
    else:
        # Adding 1..K-1 modulo K gives a uniformly drawn different class.
        y[flipped] = (y[flipped] + rng.integers(1, K, size=len(flipped))) % K

    attrs = dict(dataset.attrs)
    attrs["flipped"] = flipped.astype(np.int64)
    attrs["label_noise"] = str(dict(noise))
    if noise.get("holdout", False):
        if dataset.subgroup() is not None:
            raise ValueError(
                f"dataset '{dataset.name}' has a subgroup, "
                "which label_noise.holdout does not support"
            )
        attrs["holdout"] = flipped.astype(np.int64)
    train = io.Split(dataset.train.X, y, dataset.train.index)
    return io.Dataset(train=train, test=dataset.test, pool=dataset.pool, attrs=attrs)
