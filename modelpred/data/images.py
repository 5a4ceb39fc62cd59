"""Image datasets: reading ImageFolders and CIFAR-10, and the builders of their features.

Two image sources feed the last-layer (``nn``) base model:

``hymenoptera``
    The ants-and-bees images in ImageFolder layout (``train/{ants,bees}``,
    ``val/{ants,bees}``; 245 + 153 images), from a local folder or the
    canonical zip. The ModelPred paper draws 208 training images at random
    and tests on the remaining 190, of which 100 are added in the addition
    scenario. Here the two original folders are pooled and split into 208
    train, 100 pool and 90 test images (disjoint, stratified, seeded), so
    that no added point is also a test point.
``cifar10``
    A seeded subset of CIFAR-10's test batch (``test_batch.bin``), whose
    images a backbone pretrained on CIFAR-10's training batches never saw.
    CIFAR-10 is read from its binary version only; the pickled python
    version is never opened.

Pipeline
--------
Every image is decoded once, its shorter side resized to ``image_size``
and the centred square cropped (:func:`read_image`).
:func:`modelpred.data.backbone.write_image_features` then writes the frozen
backbone's 512-d features to ``features/{name}.h5``, and the builders
:func:`build_hymenoptera` and :func:`build_cifar10` split and rescale those
features like every other dataset (see :mod:`modelpred.data.common`) into
``data/{dataset}.h5``. Each split's ``index`` is the row of the features
file, so figures can show a point's image.

``features/{name}.h5`` layout
-----------------------------
``X``
    float64 (n, 512), the backbone's global-average-pool output.
``y``
    int64 (n,), class index into the ``classes`` attribute.
``images``
    uint8 (n, T, T, 3), display copies of the images for figures (T = 64
    for folders, CIFAR-10's own 32).
``names``
    str (n,), the image's path relative to the source folder, or
    ``<file>:<record>`` for CIFAR-10.

Root attributes: ``dataset``, ``source``, ``source_sha256``, ``n_classes``,
``classes`` (JSON), ``backbone`` (``random_init``, ``pretrained`` or
``checkpoint``), ``backbone_sha256`` (of its weights), ``backbone_source``
(what it was pretrained on, if anything), ``backbone_test_accuracy`` (NaN
unless pretrained), ``stem``, ``image_size``, ``batch_size``,
``format_version`` and provenance.

This module imports no torch, so the data builders stay cheap to import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modelpred import io
from modelpred.data.common import (
    base_attrs,
    check_classes,
    rescale_by_max_norm,
    split_rng,
    split_sizes,
    stratified_split,
)
from modelpred.data.sources import (
    SourceError,
    download_file,
    extract_archive,
    find_file,
    resolve_source,
)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")
"""File suffixes (any case) read as images; other files are ignored."""

DISPLAY_SIZE = 64
"""Side of the display copies kept for figures, in pixels."""

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
HYMENOPTERA_SPLITS = ("train", "val")
IMAGE_BUILDERS = ("hymenoptera", "cifar10")
"""Builders whose datasets are made from ``features/{base}.h5``."""


# ---------------------------------------------------------------- reading
@dataclass
class ImageSet:
    """Images in memory with their labels.

    Attributes
    ----------
    images : ndarray of uint8, shape (n, 3, S, S)
        Channel-first pixels.
    labels : ndarray of int64, shape (n,)
        Class indices into ``classes``.
    classes : list of str
        Class names.
    names : list of str
        One identifier per image: a path relative to the source folder, or
        ``<file>:<record>`` for CIFAR-10.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> ImageSet:
        """Return the images at ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageSet(
            self.images[rows], self.labels[rows], list(self.classes), [self.names[i] for i in rows]
        )


def _square_crop(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and crop the centred square, as (3, size, size) uint8."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))),
        Image.Resampling.BILINEAR,
        reducing_gap=None,
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    square = resized.crop((left, top, left + size, top + size))
    return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)


def read_image(path: str | os.PathLike, sizes: Sequence[int]) -> list[np.ndarray]:
    """Decode one image as RGB and return a (3, s, s) uint8 square for each size in ``sizes``."""
    with Image.open(path) as handle:
        handle.seek(0)  # the first frame of an animated GIF
        rgb = handle.convert("RGB")
    return [_square_crop(rgb, size) for size in sizes]


def list_image_folder(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """Return the sorted class names of an ImageFolder and its (file, class index) pairs.

    Classes are the subfolders of ``root`` in sorted order; files are taken
    recursively, sorted, and only if their suffix is in :data:`IMAGE_EXTENSIONS`.

    Raises
    ------
    SourceError
        If ``root`` has no subfolder or a class folder contains no image.
    """
    root = Path(root)
    classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    if not classes:
        raise SourceError(
            f"{root} has no class subfolders; an ImageFolder contains one folder of images "
            "per class"
        )
    files = []
    for index, name in enumerate(classes):
        members = sorted(
            path
            for path in (root / name).rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not members:
            raise SourceError(
                f"class folder {root / name} contains no image files; add images or remove it"
            )
        files.extend((path, index) for path in members)
    return classes, files


def folder_sha256(root: str | os.PathLike, files: Sequence[Path]) -> str:
    """Return one sha256 over the relative paths and contents of ``files``."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(Path(path).relative_to(root)).encode())
        digest.update(io.sha256_file(path).encode())
    return digest.hexdigest()


def read_image_folder(
    root: str | os.PathLike,
    image_size: int,
    display_size: int | None = DISPLAY_SIZE,
    classes: Sequence[str] | None = None,
) -> tuple[ImageSet, np.ndarray | None, str]:
    """Read an ImageFolder into memory.

    Parameters
    ----------
    root : path-like
        Folder with one subfolder of images per class.
    image_size : int
        Side of the squares the network takes.
    display_size : int or None
        Side of the display copies; None skips them.
    classes : sequence of str, optional
        The class names expected, in order (a val folder must match its train folder).

    Returns
    -------
    images : ImageSet
        Images (n, 3, image_size, image_size); ``names`` are paths relative to ``root``.
    display : ndarray of uint8, shape (n, display_size, display_size, 3), or None
    sha256 : str
        :func:`folder_sha256` of the files read.
    """
    root = Path(root)
    found, files = list_image_folder(root)
    if classes is not None and list(classes) != found:
        raise SourceError(f"{root} has classes {found} but {list(classes)} were expected")
    sizes = [image_size] if display_size is None else [image_size, display_size]
    images, display = [], []
    for path, _ in files:
        try:
            squares = read_image(path, sizes)
        except OSError as error:
            raise SourceError(
                f"cannot decode image {path}: {error}; remove or replace the file"
            ) from error
        images.append(squares[0])
        if display_size is not None:
            display.append(squares[1].transpose(1, 2, 0))
    image_set = ImageSet(
        images=np.stack(images),
        labels=np.asarray([label for _, label in files], dtype=np.int64),
        classes=found,
        names=[str(path.relative_to(root)) for path, _ in files],
    )
    shown = np.stack(display) if display_size is not None else None
    return image_set, shown, folder_sha256(root, [path for path, _ in files])


def split_folders(root: str | os.PathLike) -> list[Path]:
    """Return the split subfolders (``train``, ``val``, ``test``) of ``root``, or [root] if none."""
    root = Path(root)
    parts = [root / name for name in ("train", "val", "test") if (root / name).is_dir()]
    return parts or [root]


def read_hymenoptera(
    root: str | os.PathLike, image_size: int, display_size: int = DISPLAY_SIZE
) -> tuple[ImageSet, np.ndarray, str]:
    """Read the Hymenoptera images, ``train/`` and ``val/`` pooled, in that order.

    ``root`` is ``hymenoptera_data`` or a folder above it (an extracted zip).

    Raises
    ------
    SourceError
        If no folder below ``root`` contains ``train`` and ``val`` ImageFolders
        with the same classes.
    """
    root = Path(root)
    candidates = [root, *sorted(path for path in root.glob("*") if path.is_dir())]
    folder = next(
        (path for path in candidates if all((path / s).is_dir() for s in HYMENOPTERA_SPLITS)),
        None,
    )
    if folder is None:
        raise SourceError(
            f"no train/ and val/ folders found in {root} or its subfolders; set "
            "datasets.hymenoptera.source.path to the hymenoptera_data folder "
            "(train/{ants,bees}, val/{ants,bees})"
        )
    parts, shown, digests = [], [], []
    classes = None
    for split in HYMENOPTERA_SPLITS:
        image_set, display, sha256 = read_image_folder(
            folder / split, image_size, display_size, classes
        )
        classes = image_set.classes
        image_set.names = [f"{split}/{name}" for name in image_set.names]
        parts.append(image_set)
        shown.append(display)
        digests.append(sha256)
    merged = ImageSet(
        images=np.concatenate([part.images for part in parts]),
        labels=np.concatenate([part.labels for part in parts]),
        classes=list(classes or []),
        names=[name for part in parts for name in part.names],
    )
    digest = hashlib.sha256("".join(digests).encode()).hexdigest()
    return merged, np.concatenate(shown), digest


# ---------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
"""sha256 of ``cifar-10-binary.tar.gz`` as the dataset's authors publish it."""

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
_CIFAR10_RECORD = 1 + 3 * 32 * 32  # a label byte, then the red, green and blue 32×32 planes


def cifar10_folder(root: str | os.PathLike, key: str = "images.cifar10.path") -> Path:
    """Return the folder holding CIFAR-10's ``*.bin`` files, given it or a folder above it.

    Raises
    ------
    SourceError
        If ``test_batch.bin`` is not found, or found more than once, below ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise SourceError(
            f"{key} is '{root}', which is not a folder; set it to the folder holding "
            "cifar-10-batches-bin (CIFAR-10's binary version, not the python one)"
        )
    try:
        return find_file(root, CIFAR10_TEST_FILE, "cifar10", "the CIFAR-10 binary folder").parent
    except SourceError as error:
        raise SourceError(
            f"{key}: {error}. Extract cifar-10-binary.tar.gz ({CIFAR10_URL}) there; the "
            "pickled python version is never read"
        ) from error


def resolve_cifar10(
    source: Mapping[str, Any] | None,
    cache_dir: str | os.PathLike | None = None,
    key: str = "images.cifar10",
) -> Path:
    """Return the ``cifar-10-batches-bin`` folder that the source ``key`` names.

    ``{kind: path, path: ...}`` names the folder or one above it.
    ``{kind: url}`` downloads ``url`` (default :data:`CIFAR10_URL`) into
    ``cache_dir``, checks its sha256 (default :data:`CIFAR10_SHA256` for
    the default URL, required otherwise) and extracts it; a finished
    download is reused.

    Raises
    ------
    SourceError
        If the path is unset or missing, the download or its checksum fails,
        or the folder holds no ``test_batch.bin``.
    """
    source = dict(source or {})
    kind = source.get("kind", "path")
    if kind == "path":
        path = source.get("path")
        if not path:
            raise SourceError(
                f"CIFAR-10 is not configured: set {key}.path to the folder holding "
                f"cifar-10-batches-bin, or {key}.kind to url to download {CIFAR10_URL}"
            )
        return cifar10_folder(Path(os.path.expanduser(str(path))), f"{key}.path")
    if kind != "url":
        raise SourceError(f"{key}.kind is {kind!r}; set it to path or url")
    url = source.get("url") or CIFAR10_URL
    sha256 = source.get("sha256") or (CIFAR10_SHA256 if url == CIFAR10_URL else None)
    if not sha256:
        raise SourceError(
            f"{key}.url is {url} but {key}.sha256 is not set; set it to the file's sha256"
        )
    if cache_dir is None:
        raise SourceError(f"{key} downloads {url} but no cache folder was given; set cache_dir")
    target = Path(cache_dir) / "cifar10" / Path(url).name
    archive = download_file(url, target, sha256, key=f"{key}.sha256")
    return cifar10_folder(extract_archive(archive), f"{key}.url")


def read_cifar10_binary(folder: str | os.PathLike, files: Sequence[str]) -> ImageSet:
    """Read records of CIFAR-10's binary version.

    Each record is one label byte followed by 3,072 pixel bytes: the red,
    green and blue 32×32 planes in row-major order. Nothing is unpickled.

    Parameters
    ----------
    folder : path-like
        The ``cifar-10-batches-bin`` folder.
    files : sequence of str
        File names to read, e.g. :data:`CIFAR10_TRAIN_FILES`.

    Raises
    ------
    SourceError
        If a file is missing, its size is not a whole number of records, or a
        label is outside 0..9.
    """
    folder = Path(folder)
    images, labels, names = [], [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise SourceError(f"CIFAR-10 file {path} not found; extract the full binary archive")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % _CIFAR10_RECORD:
            raise SourceError(
                f"{path} has {raw.size} bytes, not a whole number of {_CIFAR10_RECORD}-byte "
                "CIFAR-10 records; download cifar-10-binary.tar.gz again"
            )
        records = raw.reshape(-1, _CIFAR10_RECORD)
        if records[:, 0].max() >= len(CIFAR10_CLASSES):
            raise SourceError(f"{path} has labels above 9, so it is not CIFAR-10's binary version")
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
        names.extend(f"{name}:{row}" for row in range(len(records)))
    return ImageSet(np.concatenate(images), np.concatenate(labels), list(CIFAR10_CLASSES), names)


def cifar10_sha256(folder: str | os.PathLike) -> str:
    """Return a JSON object of the sha256 of each CIFAR-10 binary file present."""
    folder = Path(folder)
    digests = {
        name: io.sha256_file(folder / name)
        for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
        if (folder / name).is_file()
    }
    return json.dumps(digests, sort_keys=True)


def resize_square(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (n, 3, H, W) to (n, 3, size, size) the way :func:`read_image` does."""
    if images.shape[-2:] == (size, size):
        return images
    return np.stack(
        [_square_crop(Image.fromarray(image.transpose(1, 2, 0)), size) for image in images]
    )


def read_image_source(
    name: str,
    builder: str,
    spec: Mapping[str, Any],
    image_size: int,
    seed: int,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[ImageSet, np.ndarray, str, str]:
    """Read the images that dataset ``name`` is drawn from.

    Returns the images, their display copies (n, T, T, 3), the ``source``
    description and its sha256. For ``cifar10`` these are a seeded subset of
    ``n_train + n_pool + n_test`` images of the test batch.
    """
    if builder == "hymenoptera":
        source = resolve_source(
            name,
            spec.get("source"),
            kinds=("path", "url"),
            expect="the hymenoptera_data folder (train/{ants,bees}, val/{ants,bees})",
            cache_dir=cache_dir,
        )
        image_set, display, sha256 = read_hymenoptera(source.path, image_size)
        return image_set, display, source.description, sha256
    if builder == "cifar10":
        source = resolve_source(
            name,
            spec.get("source"),
            kinds=("path", "url"),
            expect="the folder holding cifar-10-batches-bin",
            cache_dir=cache_dir,
        )
        folder = cifar10_folder(source.path, f"datasets.{name}.source.path")
        test = read_cifar10_binary(folder, [CIFAR10_TEST_FILE])
        needed = split_sizes(name, spec).total
        if needed > len(test):
            raise ValueError(
                f"dataset '{name}' needs {needed} images but CIFAR-10's test batch has "
                f"{len(test)}; lower datasets.{name}.n_train, n_pool or n_test"
            )
        # A stream of its own, so the images drawn are independent of the split draws.
        rng = split_rng(seed, "cifar10subset")
        rows = np.sort(rng.choice(len(test), needed, replace=False))
        chosen = test.subset(rows)
        display = chosen.images.transpose(0, 2, 3, 1).copy()
        chosen.images = resize_square(chosen.images, image_size)
        return chosen, display, source.description, cifar10_sha256(folder)
    raise ValueError(
        f"dataset '{name}' uses builder {builder!r}, which has no images; "
        f"image builders are {', '.join(IMAGE_BUILDERS)}"
    )


def read_feature_images(path: str | os.PathLike, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Return the display images (m, T, T, 3) and names of the given rows of a features file."""
    arrays, _ = io.read_arrays(path, ("images", "names"))
    rows = np.asarray(rows, dtype=np.int64)
    names = [_text(value) for value in arrays["names"]]
    return arrays["images"][rows], [names[i] for i in rows]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- builders
def _build_from_features(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    features_path: str | os.PathLike | None,
    builder: str,
) -> io.Dataset:
    if features_path is None:
        raise ValueError(
            f"dataset '{name}' is built from frozen ResNet-18 features, but no features file "
            f"was given; run the image_features rule (or write_image_features) and pass "
            "its output as features_path"
        )
    if spec.get("subgroup"):
        raise ValueError(
            f"datasets.{name}.subgroup is {spec['subgroup']!r}, but {builder} has no "
            "subgroups; remove the key"
        )
    arrays, attrs = io.read_arrays(features_path, ("X", "y"))
    X, y = arrays["X"].astype(np.float64), arrays["y"].astype(np.int64)
    classes = json.loads(str(attrs["classes"]))
    if not np.all(np.isfinite(X)):
        raise ValueError(
            f"{features_path} contains NaN or infinite features; "
            "delete it and rerun the rule that writes it"
        )
    check_classes(name, classes, spec.get("models", ["nn"]))
    sizes = split_sizes(name, spec)
    train, pool, test = stratified_split(name, y, sizes, split_rng(seed, name))
    scale, (X_train, X_pool, X_test) = rescale_by_max_norm(name, X[train], X[pool], X[test])

    result = base_attrs(
        name,
        spec,
        seed,
        classes,
        str(attrs.get("source", "")),
        str(attrs.get("source_sha256", "")),
        scale,
        f"{X.shape[1]} global-average-pool features of a frozen ResNet-18 "
        f"(backbone {attrs.get('backbone', 'unknown')}, {attrs.get('image_size', '?')}-pixel "
        "inputs); divided by the largest training-row norm",
        inputs={"features": features_path},
    )
    # The backbone travels with the data, so tables and figures can name the one that made a row.
    for key in (
        "backbone",
        "backbone_sha256",
        "backbone_source",
        "backbone_test_accuracy",
        "stem",
        "image_size",
    ):
        if key in attrs:
            result[key] = attrs[key]
    return io.Dataset(
        train=io.Split(X_train, y[train], train),
        test=io.Split(X_test, y[test], test),
        pool=io.Split(X_pool, y[pool], pool),
        attrs=result,
    )


def build_hymenoptera(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    features_path: str | os.PathLike | None = None,
    **_: Any,
) -> io.Dataset:
    """Split the Hymenoptera features in ``features_path`` into train, pool and test.

    Each split's ``index`` is the row of the features file, whose ``images``
    and ``names`` give the picture. See the module docstring for the sizes.
    """
    return _build_from_features(name, spec, seed, features_path, "hymenoptera")


def build_cifar10(
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    features_path: str | os.PathLike | None = None,
    **_: Any,
) -> io.Dataset:
    """Split the CIFAR-10 features in ``features_path`` into train, pool and test."""
    return _build_from_features(name, spec, seed, features_path, "cifar10")
