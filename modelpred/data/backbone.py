"""The ResNet-18 feature extractor of the image datasets: build, pretrain, save, load, extract.

The ModelPred paper trains only the last layer of a ResNet-18 that was
pretrained on CIFAR-10, on the 512-d output of its global average pool. This
module provides that frozen extractor.

Network
-------
The network is torchvision's ``resnet18(weights=None)``; no weights are ever
downloaded. Images enter at ``image_size`` × ``image_size`` pixels (32 by
default, CIFAR-10's own size), for pretraining and for extraction alike. With
``stem="cifar"`` (the default) the 7×7 stride-2 first convolution becomes a
3×3 stride-1 one and the max pool is dropped, the usual adaptation of
ResNet-18 to 32-pixel images, which keeps a 4×4 map before the average pool.
``stem="imagenet"`` keeps torchvision's layers unchanged; at 32 pixels its
last block sees a 1×1 map, so it costs about 16 times less and is less
accurate. :class:`ResNetBackbone` wraps the network with the per-channel
normalisation of its input, so a checkpoint carries everything that turns
uint8 pixels into features.

Backbones
---------
``random_init``
    Seeded random weights (torchvision's initialisation), no training. It is
    the ablation of the ModelPred paper's Figure 12 (a last layer on random
    features), and the offline default.
``pretrained``
    Trained by :func:`pretrain_backbone` on CIFAR-10 (read from its binary
    version, ``cifar-10-batches-bin/*.bin``) or on any ImageFolder.
``checkpoint``
    A state_dict the user supplies: one written here, or a torchvision
    ``resnet18`` state_dict whose first convolution decides the stem.

Files
-----
A backbone is a state_dict loadable with ``torch.load(path, weights_only=True)``
and a JSON sidecar (``<path>.json``) with its settings, training curve and
test accuracy. A pretraining run keeps a checkpoint at ``<path>.ckpt``
(also weights_only) after every epoch, written atomically; a rerun resumes
from it and the finished run removes it.

Feature extraction
------------------
:func:`write_image_features` writes ``features/{name}.h5`` (layout in
:mod:`modelpred.data.images`). Features do not depend on the extraction
batch size on the CPU: the network runs in evaluation mode (batch norm uses
its running statistics) and its convolutions run with oneDNN and NNPACK
disabled, so that torch's fallback convolves image by image (the tests
check this bit for bit). On CUDA, cuDNN gives no such guarantee, so
features may differ in the last bits between batch sizes and devices.

Reproducibility
---------------
Initialisation, batch order and augmentation come from generators seeded by
the config seed (and the epoch), so a resumed run repeats the epochs it
missed exactly. On the CPU, with a fixed torch thread count, a run is
bitwise reproducible. CUDA runs use deterministic cuDNN algorithms but may
differ from CPU runs in the last bits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional
from torchvision.models import resnet18

from modelpred import io
from modelpred.data.images import (
    CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILES,
    ImageSet,
    cifar10_sha256,
    read_cifar10_binary,
    read_image_folder,
    resize_square,
    resolve_cifar10,
    split_folders,
)

logger = logging.getLogger(__name__)

N_FEATURES = 512
"""Width of ResNet-18's global average pool, the feature dimension d."""

IMAGE_SIZE = 32
"""Default side of the square images the network takes, in pixels."""

STEMS = ("cifar", "imagenet")
"""First-layer variants: 3×3 stride 1 without max pool, or torchvision's 7×7 stride 2."""

DEFAULT_MEAN = (0.4914, 0.4822, 0.4465)
DEFAULT_STD = (0.2470, 0.2435, 0.2616)
"""Approximate per-channel mean and standard deviation of CIFAR-10's training
pixels (in [0, 1]). A pretraining run measures its own; these serve random
and foreign backbones."""


# ---------------------------------------------------------------- network
class ResNetBackbone(nn.Module):
    """torchvision's ResNet-18 with input normalisation; ``features`` is the frozen extractor.

    Parameters
    ----------
    n_classes : int
        Outputs of the classification layer used in pretraining.
    stem : {"cifar", "imagenet"}
        First-layer variant (see the module docstring).
    mean, std : sequence of 3 floats
        Per-channel statistics of pixels in [0, 1], stored as buffers.
    """

    def __init__(
        self,
        n_classes: int = 10,
        stem: str = "cifar",
        mean: Sequence[float] = DEFAULT_MEAN,
        std: Sequence[float] = DEFAULT_STD,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem is {stem!r}; set it to one of {', '.join(STEMS)}")
        self.stem = stem
        self.resnet = resnet18(weights=None, num_classes=int(n_classes))
        if stem == "cifar":
            self.resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(self.resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.resnet.maxpool = nn.Identity()
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def n_classes(self) -> int:
        return int(self.resnet.fc.out_features)

    def normalise(self, images: Tensor) -> Tensor:
        """Map uint8 pixels (n, 3, H, W) to normalised float32 inputs."""
        x = images.to(self.input_mean.device, torch.float32) / 255.0
        return (x - self.input_mean) / self.input_std

    def features(self, images: Tensor) -> Tensor:
        """Return the 512-d global-average-pool output for uint8 images (n, 3, H, W)."""
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(self.normalise(images)))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return torch.flatten(r.avgpool(x), 1)  # (n, 512)

    def forward(self, images: Tensor) -> Tensor:
        """Return class logits (n, n_classes) for uint8 images (n, 3, H, W)."""
        return self.resnet.fc(self.features(images))


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return ``device``, with ``"auto"`` (or None) meaning cuda when available, else cpu."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch's CPU kernels on ``threads`` threads inside the block (None: leave as is).

    The thread count is process-wide state, so it is restored afterwards.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def random_backbone(
    seed: int,
    stem: str = "cifar",
    n_classes: int = 10,
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> ResNetBackbone:
    """Return a ResNet-18 with seeded random weights (torchvision's initialisation).

    Torch's global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return ResNetBackbone(n_classes=n_classes, stem=stem, mean=mean, std=std).eval()


# ---------------------------------------------------------------- files
def sidecar_path(path: str | os.PathLike) -> Path:
    """Return the JSON sidecar of a backbone file: ``<path>.json``."""
    return Path(f"{path}.json")


def checkpoint_path(path: str | os.PathLike) -> Path:
    """Return where a pretraining run keeps its resumable checkpoint: ``<path>.ckpt``."""
    return Path(f"{path}.ckpt")


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


def save_backbone(
    path: str | os.PathLike, backbone: ResNetBackbone, metadata: Mapping[str, Any]
) -> None:
    """Write the backbone's state_dict and its JSON sidecar, each atomically.

    The sidecar gets ``stem``, ``n_classes`` and ``format_version`` on top of
    ``metadata``.
    """
    sidecar = {
        **dict(metadata),
        "stem": backbone.stem,
        "n_classes": backbone.n_classes,
        "format_version": io.FORMAT_VERSION,
    }
    with io.atomic_path(path) as tmp:
        torch.save(_cpu_state(backbone), tmp)
    io.write_json(sidecar_path(path), sidecar)


def load_backbone(path: str | os.PathLike) -> tuple[ResNetBackbone, dict[str, Any]]:
    """Load a backbone file into evaluation mode; return it and its sidecar (or {}).

    Accepts a state_dict written by :func:`save_backbone` or a plain
    torchvision ``resnet18`` state_dict (keys without the ``resnet.``
    prefix), whose normalisation defaults to :data:`DEFAULT_MEAN` and
    :data:`DEFAULT_STD`. The stem follows from the first convolution's
    kernel size, and the classification layer's size from its weight.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    modelpred.io.FormatError
        If the file is not a ResNet-18 state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone file {path} not found; check images.checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        raise io.FormatError(
            f"{path} cannot be read as a weights-only state_dict ({error}); "
            "pass a ResNet-18 state_dict saved with torch.save(model.state_dict(), path)"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise io.FormatError(f"{path} does not contain a state_dict of tensors")
    if "conv1.weight" in state:
        state = {f"resnet.{key}": value for key, value in state.items()}
    conv1 = state.get("resnet.conv1.weight")
    fc = state.get("resnet.fc.weight")
    if conv1 is None or fc is None or conv1.ndim != 4:
        raise io.FormatError(
            f"{path} is not a ResNet-18 state_dict (no conv1.weight or fc.weight); "
            "pass a torchvision resnet18 state_dict or one written by modelpred"
        )
    stem = "cifar" if conv1.shape[-1] == 3 else "imagenet"
    backbone = ResNetBackbone(n_classes=int(fc.shape[0]), stem=stem)
    state.setdefault("input_mean", backbone.input_mean.clone())
    state.setdefault("input_std", backbone.input_std.clone())
    try:
        backbone.load_state_dict(state)
    except RuntimeError as error:
        raise io.FormatError(f"{path} does not match ResNet-18's layers: {error}") from error
    sidecar = sidecar_path(path)
    metadata = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return backbone.eval(), metadata


def backbone_digest(backbone: ResNetBackbone) -> str:
    """Return the sha256 of the backbone's parameters and buffers, in state_dict order."""
    digest = hashlib.sha256()
    for key, value in backbone.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- pretraining
@dataclass
class PretrainConfig:
    """Settings of :func:`pretrain_backbone`.

    Attributes
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
        Images per SGD step.
    lr : float
        Peak learning rate; it follows a cosine from ``lr`` to 0 over all steps.
    momentum, weight_decay : float
        SGD settings.
    seed : int
        Seeds the initialisation, the batch order and the augmentation.
    stem : str
        First-layer variant.
    augment : bool
        Random crops (4-pixel zero padding) and horizontal flips.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads : int
        Torch CPU threads.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    stem: str = "cifar"
    augment: bool = True
    device: str = "auto"
    threads: int = 2

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PretrainConfig:
        """Build from a mapping, ignoring keys that are not fields."""
        fields = cls.__dataclass_fields__
        return cls(**{key: value for key, value in values.items() if key in fields})

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"images.pretrain needs epochs >= 1 and batch_size >= 1, "
                f"got epochs={self.epochs}, batch_size={self.batch_size}"
            )
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(
                f"images.pretrain: lr must be positive, momentum in [0, 1) and weight_decay "
                f"non-negative; got {self.lr}, {self.momentum}, {self.weight_decay}"
            )
        if self.stem not in STEMS:
            raise ValueError(f"images.stem is {self.stem!r}; set it to one of {', '.join(STEMS)}")


HELD_OUT_FRACTION = 0.1
"""Share of an ImageFolder without split subfolders that pretraining holds out for testing."""


def load_pretraining_data(
    data: str,
    image_size: int,
    seed: int,
    cifar10: Mapping[str, Any] | None = None,
    imagefolder: str | os.PathLike | None = None,
    max_images: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[ImageSet, ImageSet, dict[str, Any]]:
    """Read the training and test images of a pretraining run.

    Parameters
    ----------
    data : {"cifar10", "imagefolder"}
        CIFAR-10's binary training batches (and its test batch), or an ImageFolder.
    image_size : int
        Side of the images the network takes; CIFAR-10 is resized from 32 if it differs.
    seed : int
        Seeds the held-out tenth of a split-less ImageFolder and the ``max_images`` subset.
    cifar10 : mapping, optional
        The ``images.cifar10`` source, for ``data="cifar10"``.
    imagefolder : path-like, optional
        The ImageFolder root, for ``data="imagefolder"``. Its ``train/`` and
        ``val/`` (or ``test/``) subfolders are the training and test images
        when present; otherwise :data:`HELD_OUT_FRACTION` is held out.
    max_images : int, optional
        Keep a seeded random subset of at most this many training images.
    cache_dir : path-like, optional
        Where a CIFAR-10 ``url`` source is downloaded.

    Returns
    -------
    train, test : ImageSet
    source : dict
        ``data``, ``source`` and ``source_sha256`` for the backbone's sidecar.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x50524554]))
    if data == "cifar10":
        folder = resolve_cifar10(cifar10, cache_dir)
        train = read_cifar10_binary(folder, CIFAR10_TRAIN_FILES)
        test = read_cifar10_binary(folder, [CIFAR10_TEST_FILE])
        train.images = resize_square(train.images, image_size)
        test.images = resize_square(test.images, image_size)
        source = {"source": str(folder), "source_sha256": cifar10_sha256(folder)}
    elif data == "imagefolder":
        if not imagefolder:
            raise ValueError(
                "images.pretrain.data is imagefolder but images.pretrain.imagefolder is not set; "
                "set it to a folder with one subfolder of images per class"
            )
        parts = split_folders(imagefolder)
        train, _, train_sha = read_image_folder(parts[0], image_size, display_size=None)
        if len(parts) > 1:
            test, _, test_sha = read_image_folder(
                parts[1], image_size, display_size=None, classes=train.classes
            )
            sha256 = hashlib.sha256((train_sha + test_sha).encode()).hexdigest()
        else:
            order = rng.permutation(len(train))
            n_test = max(1, round(HELD_OUT_FRACTION * len(train)))
            test = train.subset(np.sort(order[:n_test]))
            train = train.subset(np.sort(order[n_test:]))
            sha256 = train_sha
        source = {"source": str(imagefolder), "source_sha256": sha256}
    else:
        raise ValueError(f"images.pretrain.data is {data!r}; set it to cifar10 or imagefolder")
    if max_images is not None and max_images < len(train):
        train = train.subset(np.sort(rng.choice(len(train), size=max_images, replace=False)))
    return train, test, {"data": data, **source}


def channel_statistics(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Return the per-channel mean and standard deviation of uint8 images, in [0, 1] units."""
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        squares += (block**2).sum(axis=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 1e-12))
    return mean.tolist(), std.tolist()


def _augment(batch: Tensor, generator: torch.Generator) -> Tensor:
    """Randomly crop (after 4-pixel zero padding) and flip uint8 images (b, 3, S, S)."""
    b, _, size, _ = batch.shape
    padded = functional.pad(batch, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    rows = offsets[:, 0, None] + torch.arange(size)  # (b, S)
    cols = offsets[:, 1, None] + torch.arange(size)  # (b, S)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = torch.arange(b)[:, None, None, None]
    channel = torch.arange(3)[None, :, None, None]
    return padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Seeding every epoch from (seed, epoch) lets a resumed run draw the same
    # batches and augmentations without saving generator state.
    digest = hashlib.sha256(f"pretrain:{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _learning_rate(config: PretrainConfig, step: int, total_steps: int) -> float:
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total_steps))


@torch.no_grad()
def evaluate_accuracy(
    backbone: ResNetBackbone, images: np.ndarray, labels: np.ndarray, batch_size: int = 256
) -> float:
    """Return the classification accuracy of the backbone's own output layer."""
    if len(labels) == 0:
        return float("nan")
    backbone.eval()
    device = backbone.input_mean.device
    correct = 0
    for start in range(0, len(labels), batch_size):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        predicted = backbone(batch).argmax(1).cpu().numpy()
        correct += int((predicted == labels[start : start + batch_size]).sum())
    return correct / len(labels)


def _data_digest(train: ImageSet, test: ImageSet) -> str:
    digest = hashlib.sha256()
    for part in (train.images, train.labels, test.images, test.labels):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def _load_checkpoint(
    path: Path, expected: Mapping[str, Any], backbone: nn.Module, optimiser: torch.optim.Optimizer
) -> tuple[int, list[dict[str, Any]]]:
    """Restore a matching checkpoint; return the epochs done and the history so far."""
    if not path.is_file():
        return 0, []
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a file cut short by a crash fails in several ways
        logger.warning("checkpoint %s cannot be read (%s); starting from epoch 0", path, error)
        return 0, []
    if state.get("settings") != json.dumps(dict(expected), sort_keys=True):
        logger.warning(
            "checkpoint %s was written with other settings or data; starting from epoch 0", path
        )
        return 0, []
    backbone.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    history = json.loads(state["history"])
    logger.info("resuming pretraining from %s after epoch %d", path, int(state["epoch"]))
    return int(state["epoch"]), history


def pretrain_backbone(
    train: ImageSet,
    test: ImageSet,
    out_path: str | os.PathLike,
    config: PretrainConfig,
    source: Mapping[str, Any],
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train a ResNet-18 classifier on ``train`` and write it as a backbone file.

    Parameters
    ----------
    train, test : ImageSet
        Images of the same size and classes. ``test`` gives the accuracy
        logged after every epoch and stored in the sidecar.
    out_path : path-like
        The backbone file; its checkpoint is ``<out_path>.ckpt``.
    config : PretrainConfig
    source : mapping
        Describes the data (``kind``, ``source``, ``source_sha256``) for the sidecar.
    on_epoch_end : callable, optional
        Called with the epoch number (1-based) after its checkpoint is written.

    Returns
    -------
    dict
        The sidecar written: settings, ``history`` (one record per epoch),
        ``test_accuracy``, ``classes``, ``n_train``, ``n_test``, ``seconds``
        and the ``source`` fields.
    """
    config.check()
    if len(train) == 0 or train.images.shape[1:] != test.images.shape[1:]:
        raise ValueError(
            f"pretraining needs training images and test images of one shape; got "
            f"{train.images.shape} and {test.images.shape}"
        )
    out_path = Path(out_path)
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    mean, std = channel_statistics(train.images)
    # A checkpoint resumes only a run of the same settings and data; the device
    # and thread count may change between attempts.
    settings = {**asdict(config), "device": None, "threads": None}
    settings["data"] = _data_digest(train, test)
    started = time.perf_counter()

    with torch_threads(config.threads if device.type == "cpu" else None):
        backbone = random_backbone(config.seed, config.stem, len(train.classes), mean, std)
        backbone.to(device)
        optimiser = torch.optim.SGD(
            backbone.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        checkpoint = checkpoint_path(out_path)
        done, history = _load_checkpoint(checkpoint, settings, backbone, optimiser)
        inputs = torch.from_numpy(train.images)
        targets = torch.from_numpy(train.labels)
        steps_per_epoch = math.ceil(len(train) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        logger.info(
            "pretraining ResNet-18 (stem %s) on %d images of %d classes, %d test images, "
            "%d epochs on %s",
            config.stem,
            len(train),
            len(train.classes),
            len(test),
            config.epochs,
            device,
        )
        for epoch in range(done + 1, config.epochs + 1):
            record = _train_epoch(
                backbone, optimiser, inputs, targets, config, epoch, steps_per_epoch, total_steps
            )
            record["test_accuracy"] = evaluate_accuracy(backbone, test.images, test.labels)
            history.append(record)
            logger.info(
                "epoch %d/%d: train loss %.4f, train accuracy %.4f, test accuracy %.4f, %.1f s",
                epoch,
                config.epochs,
                record["train_loss"],
                record["train_accuracy"],
                record["test_accuracy"],
                record["seconds"],
            )
            _save_checkpoint(checkpoint, settings, backbone, optimiser, epoch, history)
            if on_epoch_end is not None:
                on_epoch_end(epoch)

    test_accuracy = history[-1]["test_accuracy"]
    logger.info("test accuracy %.4f on %d test images", test_accuracy, len(test))
    metadata = {
        "backbone": "pretrained",
        "config": asdict(config),
        "device": str(device),
        "history": history,
        "test_accuracy": test_accuracy,
        "classes": list(train.classes),
        "n_train": len(train),
        "n_test": len(test),
        "image_size": int(train.images.shape[-1]),
        "seconds": time.perf_counter() - started,
        **dict(source),
    }
    save_backbone(out_path, backbone.cpu(), metadata)
    checkpoint.unlink(missing_ok=True)
    return {**metadata, "stem": backbone.stem, "n_classes": backbone.n_classes}


def _train_epoch(
    backbone: ResNetBackbone,
    optimiser: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    config: PretrainConfig,
    epoch: int,
    steps_per_epoch: int,
    total_steps: int,
) -> dict[str, Any]:
    """Run one epoch of SGD; return its mean loss, training accuracy and seconds."""
    started = time.perf_counter()
    device = backbone.input_mean.device
    generator = _epoch_generator(config.seed, epoch)
    order = torch.randperm(len(inputs), generator=generator)
    backbone.train()
    total_loss, correct = 0.0, 0
    for step, batch in enumerate(order.split(config.batch_size)):
        images = inputs[batch]
        if config.augment:
            images = _augment(images, generator)
        for group in optimiser.param_groups:
            group["lr"] = _learning_rate(config, (epoch - 1) * steps_per_epoch + step, total_steps)
        logits = backbone(images.to(device))
        labels = targets[batch].to(device)
        loss = functional.cross_entropy(logits, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total_loss += float(loss.detach()) * len(batch)
        correct += int((logits.argmax(1) == labels).sum())
    backbone.eval()
    return {
        "epoch": epoch,
        "train_loss": total_loss / len(inputs),
        "train_accuracy": correct / len(inputs),
        "seconds": time.perf_counter() - started,
    }


def _save_checkpoint(
    path: Path,
    settings: Mapping[str, Any],
    backbone: nn.Module,
    optimiser: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
) -> None:
    state = {
        "model": _cpu_state(backbone),
        "optimiser": optimiser.state_dict(),
        "epoch": epoch,
        "history": json.dumps(history),
        "settings": json.dumps(dict(settings), sort_keys=True),
    }
    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


# ---------------------------------------------------------------- features
@contextlib.contextmanager
def _batch_independent_convolutions() -> Iterator[None]:
    # oneDNN picks its convolution kernels by batch size (batches of 1 and 3
    # images round differently from batches of 7 or more with torch 2.14), and
    # NNPACK convolves a whole batch at once. With both off, torch's fallback
    # convolves image by image, about 2.5 times slower than oneDNN.
    with warnings.catch_warnings():
        # Toggling oneDNN warns about Intel GPUs, which this code never uses.
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with (
            torch.backends.mkldnn.flags(enabled=False),
            torch.backends.nnpack.flags(enabled=False),
        ):
            yield


@torch.no_grad()
def extract_features(
    backbone: ResNetBackbone,
    images: np.ndarray,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    threads: int | None = 1,
) -> np.ndarray:
    """Return the frozen backbone's features of uint8 images, float64 (n, 512).

    Parameters
    ----------
    backbone : ResNetBackbone
        Used in evaluation mode (batch-norm running statistics).
    images : ndarray of uint8, shape (n, 3, S, S)
    batch_size : int
        Images per forward pass; the result does not depend on it on the CPU.
    device : str or torch.device
        ``"auto"`` picks cuda when available.
    threads : int or None
        Torch CPU threads during extraction (None leaves the setting alone).
    """
    if batch_size < 1:
        raise ValueError(f"images.extract.batch_size must be at least 1, got {batch_size}")
    device = resolve_device(device)
    backbone = backbone.eval().to(device)
    parts = []
    cpu_threads = threads if device.type == "cpu" else None
    with torch_threads(cpu_threads), _batch_independent_convolutions():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            parts.append(backbone.features(batch.to(device)).double().cpu())
    if not parts:
        return np.zeros((0, backbone.resnet.fc.in_features))
    features = torch.cat(parts).numpy()
    if not np.all(np.isfinite(features)):
        raise ValueError(
            "the backbone produced NaN or infinite features; check that the backbone file "
            "holds trained or freshly initialised weights"
        )
    return features


def backbone_attrs(backbone: ResNetBackbone, metadata: Mapping[str, Any], kind: str) -> dict:
    """Return the root attributes that name the backbone behind a features file."""
    accuracy = metadata.get("test_accuracy")
    return {
        "backbone": kind,
        "backbone_sha256": backbone_digest(backbone),
        "backbone_source": str(metadata.get("source", "")),
        "backbone_test_accuracy": float("nan") if accuracy is None else float(accuracy),
        "stem": backbone.stem,
    }


def write_image_features(
    out_path: str | os.PathLike,
    name: str,
    image_set: ImageSet,
    display: np.ndarray,
    source: str,
    source_sha256: str,
    backbone: ResNetBackbone,
    backbone_info: Mapping[str, Any],
    batch_size: int = 64,
    device: str = "auto",
    threads: int | None = 1,
    config: Mapping[str, Any] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Extract the features of ``image_set`` and write ``features/{name}.h5``.

    ``backbone_info`` contains the root attributes of :func:`backbone_attrs`.
    ``extra_attrs`` (provenance) are merged into the root attributes last.
    Returns the root attributes written.
    """
    features = extract_features(backbone, image_set.images, batch_size, device, threads)
    attrs: dict[str, Any] = {
        "dataset": name,
        "source": source,
        "source_sha256": source_sha256,
        "n_classes": np.int64(len(image_set.classes)),
        "classes": json.dumps(list(image_set.classes)),
        "image_size": np.int64(image_set.images.shape[-1]),
        "batch_size": np.int64(batch_size),
        **dict(backbone_info),
    }
    attrs.update(io.provenance_attrs(config=dict(config or {})))
    attrs.update(extra_attrs or {})
    arrays = {
        "X": features,
        "y": image_set.labels.astype(np.int64),
        "images": np.ascontiguousarray(display, dtype=np.uint8),
        "names": np.asarray(image_set.names, dtype=object),
    }
    _write_features(out_path, arrays, attrs)
    logger.info(
        "wrote %s: %d images of %d classes, %d features, backbone %s",
        out_path,
        len(image_set),
        len(image_set.classes),
        features.shape[1],
        backbone_info.get("backbone"),
    )
    return attrs


def _write_features(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs) -> None:
    # Strings need h5py's variable-length string type, which write_arrays does not set.
    with io.atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for key, value in arrays.items():
            if value.dtype == object:
                strings = value.astype(str).tolist()
                handle.create_dataset(key, data=strings, dtype=h5py.string_dtype())
            else:
                handle.create_dataset(key, data=value)
        for key, value in attrs.items():
            handle.attrs[key] = value
        handle.attrs["format_version"] = io.FORMAT_VERSION
