"""Image datasets: ImageFolder and CIFAR-10 reading, backbones, features, experiments, workflow.

Every test builds its images in a temporary folder (tiny PNGs, a few fake
CIFAR-10 records), so nothing is downloaded. The workflow test at the end
runs the smoke config on the real Hymenoptera images when they are present.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import HYMENOPTERA_DIR as CONFTEST_HYMENOPTERA_DIR
from PIL import Image
from torchvision.models import resnet18

from modelpred import io
from modelpred.applications import image_experiments
from modelpred.data import SourceError, build_dataset
from modelpred.data.backbone import (
    PretrainConfig,
    backbone_attrs,
    checkpoint_path,
    extract_features,
    load_backbone,
    load_pretraining_data,
    pretrain_backbone,
    random_backbone,
    save_backbone,
    write_image_features,
)
from modelpred.data.images import (
    cifar10_folder,
    read_cifar10_binary,
    read_hymenoptera,
    read_image_folder,
    resolve_cifar10,
)
from modelpred.models import LastLayerNN
from modelpred.surrogate import SurrogateConfig, fit_surrogate

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# The real Hymenoptera images are not part of the repository; conftest.py
# finds a copy (train/{ants,bees}, val/{ants,bees}) beside the checkout or in
# MODELPRED_HYMENOPTERA_DIR, and the shared smoke run uses the same folder.
HYMENOPTERA_DIR = CONFTEST_HYMENOPTERA_DIR
IMAGE_SIZE = 16


def write_png(path: Path, size: tuple[int, int], color: np.ndarray, rng) -> None:
    """Write an RGB PNG of ``size`` (width, height): a colour plus noise."""
    pixels = color[None, None, :] + rng.integers(-40, 40, size=(size[1], size[0], 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def make_image_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """Write an ImageFolder of small PNGs of varied sizes, one colour per class."""
    rng = np.random.default_rng(seed)
    for index, (name, count) in enumerate(sorted(per_class.items())):
        color = np.array([60 + 120 * (index % 2), 90, 200 - 100 * (index % 2)])
        for item in range(count):
            size = (int(rng.integers(14, 30)), int(rng.integers(14, 30)))
            write_png(root / name / f"{item:03d}.png", size, color, rng)
    # A file that is not an image must be skipped.
    (root / min(per_class) / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def hymenoptera_like(tmp_path_factory):
    """A folder laid out like hymenoptera_data: train/{ants,bees}, val/{ants,bees}."""
    root = tmp_path_factory.mktemp("images") / "hymenoptera_data"
    make_image_folder(root / "train", {"ants": 9, "bees": 8}, seed=1)
    make_image_folder(root / "val", {"ants": 6, "bees": 7}, seed=2)
    return root


def write_fake_cifar10(folder: Path, n_per_file: int = 30, seed: int = 0) -> Path:
    """Write a few records in CIFAR-10's binary layout (label byte, then 3,072 pixel bytes)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = np.arange(n_per_file) % 10
        pixels = rng.integers(0, 256, size=(n_per_file, 3072))
        records = np.column_stack([labels, pixels]).astype(np.uint8)
        records.tofile(folder / name)
    return folder


# ----------------------------------------------------------------- reading
def test_image_folder_shapes_and_classes(hymenoptera_like):
    images, display, sha256 = read_image_folder(hymenoptera_like / "train", IMAGE_SIZE, 24)
    assert images.images.shape == (17, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert images.images.dtype == np.uint8
    assert display.shape == (17, 24, 24, 3)
    assert images.classes == ["ants", "bees"]
    assert np.bincount(images.labels).tolist() == [9, 8]
    assert images.names[0] == "ants/000.png"
    assert len(sha256) == 64


def test_hymenoptera_pools_train_and_val(hymenoptera_like):
    images, display, _ = read_hymenoptera(hymenoptera_like.parent, IMAGE_SIZE)
    assert len(images) == 30
    assert display.shape[0] == 30
    assert images.names[0].startswith("train/ants/")
    assert images.names[-1].startswith("val/bees/")


def test_hymenoptera_without_splits_names_the_key(tmp_path):
    make_image_folder(tmp_path / "flat", {"ants": 2, "bees": 2})
    with pytest.raises(SourceError, match="datasets.hymenoptera.source.path"):
        read_hymenoptera(tmp_path / "flat", IMAGE_SIZE)


def test_cifar10_binary_records(tmp_path):
    folder = write_fake_cifar10(tmp_path / "download" / "cifar-10-batches-bin")
    assert cifar10_folder(tmp_path / "download") == folder
    images = read_cifar10_binary(folder, ["test_batch.bin"])
    raw = np.fromfile(folder / "test_batch.bin", dtype=np.uint8).reshape(-1, 3073)
    assert images.images.shape == (30, 3, 32, 32)
    assert np.array_equal(images.images[4, 1].ravel(), raw[4, 1 + 1024 : 1 + 2048])
    assert images.labels.tolist() == (np.arange(30) % 10).tolist()
    assert images.names[4] == "test_batch.bin:4"


def test_cifar10_truncated_file_rejected(tmp_path):
    folder = write_fake_cifar10(tmp_path / "cifar-10-batches-bin")
    with open(folder / "test_batch.bin", "ab") as handle:
        handle.write(b"\x00" * 10)
    with pytest.raises(SourceError, match="not a whole number of 3073-byte"):
        read_cifar10_binary(folder, ["test_batch.bin"])


def test_unset_cifar10_names_the_key():
    with pytest.raises(SourceError, match="set images.cifar10.path"):
        resolve_cifar10({"kind": "path", "path": None})


# ----------------------------------------------------------------- features
def test_features_identical_for_any_batch_size(hymenoptera_like):
    torch.set_num_threads(1)
    images, _, _ = read_image_folder(hymenoptera_like / "train", IMAGE_SIZE, None)
    backbone = random_backbone(seed=0)
    reference = extract_features(backbone, images.images, batch_size=len(images), device="cpu")
    assert reference.shape == (17, 512)
    assert reference.dtype == np.float64
    for batch_size in (1, 3, 7):
        features = extract_features(backbone, images.images, batch_size=batch_size, device="cpu")
        assert np.array_equal(features, reference), f"batch size {batch_size}"


def test_random_backbone_is_seeded():
    first = random_backbone(seed=3).state_dict()
    second = random_backbone(seed=3).state_dict()
    other = random_backbone(seed=4).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(first["resnet.conv1.weight"], other["resnet.conv1.weight"])


def test_backbone_file_round_trip(tmp_path):
    backbone = random_backbone(seed=0, stem="imagenet")
    path = tmp_path / "backbone.pt"
    save_backbone(path, backbone, {"backbone": "random_init"})
    state = torch.load(path, weights_only=True)
    assert "input_mean" in state
    loaded, metadata = load_backbone(path)
    assert loaded.stem == "imagenet"
    assert metadata["backbone"] == "random_init"
    assert all(torch.equal(state[key], loaded.state_dict()[key]) for key in state)


def test_plain_torchvision_state_dict_loads(tmp_path):
    path = tmp_path / "torchvision.pt"
    torch.save(resnet18(weights=None, num_classes=7).state_dict(), path)
    loaded, metadata = load_backbone(path)
    assert loaded.stem == "imagenet"
    assert loaded.n_classes == 7
    assert metadata == {}


def test_foreign_file_rejected(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(io.FormatError, match="not a ResNet-18 state_dict"):
        load_backbone(path)


@pytest.fixture(scope="module")
def hymenoptera_features(hymenoptera_like, tmp_path_factory):
    """features/hymenoptera.h5 of the generated images, random-init backbone."""
    images, display, sha256 = read_hymenoptera(hymenoptera_like, IMAGE_SIZE, 24)
    backbone = random_backbone(seed=0)
    path = tmp_path_factory.mktemp("features") / "hymenoptera.h5"
    write_image_features(
        path,
        "hymenoptera",
        images,
        display,
        str(hymenoptera_like),
        sha256,
        backbone,
        backbone_attrs(backbone, {"backbone": "random_init"}, "random_init"),
        batch_size=8,
        device="cpu",
    )
    return path


def test_features_file_layout(hymenoptera_features):
    arrays, attrs = io.read_arrays(hymenoptera_features, ("X", "y", "images", "names"))
    assert arrays["X"].shape == (30, 512)
    assert arrays["images"].shape == (30, 24, 24, 3)
    assert arrays["names"][0].decode().startswith("train/ants/")
    assert attrs["backbone"] == "random_init"
    assert json.loads(attrs["classes"]) == ["ants", "bees"]
    assert np.isnan(attrs["backbone_test_accuracy"])


def test_hymenoptera_dataset_splits(hymenoptera_features):
    spec = {
        "source": {"kind": "path", "path": "unused"},
        "n_train": 14,
        "n_pool": 6,
        "n_test": 8,
        "models": ["nn"],
    }
    dataset = build_dataset("hymenoptera", spec, seed=0, features_path=hymenoptera_features)
    assert (len(dataset.train), len(dataset.pool), len(dataset.test)) == (14, 6, 8)
    rows = np.concatenate([dataset.train.index, dataset.pool.index, dataset.test.index])
    assert len(np.unique(rows)) == 28
    assert np.isclose(np.linalg.norm(dataset.train.X, axis=1).max(), 1.0)
    assert dataset.attrs["backbone"] == "random_init"
    assert dataset.n_features == 512


def test_dataset_without_features_names_the_rule():
    spec = {"source": {"kind": "path", "path": "unused"}, "n_train": 4, "n_test": 2}
    with pytest.raises(ValueError, match="run the image_features rule"):
        build_dataset("hymenoptera", spec, seed=0)


# ----------------------------------------------------------------- pretraining
TINY_PRETRAIN = {
    "epochs": 2,
    "batch_size": 8,
    "lr": 0.05,
    "threads": 1,
    "device": "cpu",
    "stem": "imagenet",
}


def test_pretraining_resumes_from_checkpoint(tmp_path, hymenoptera_like, caplog):
    train, test, source = load_pretraining_data(
        "imagefolder", IMAGE_SIZE, seed=0, imagefolder=hymenoptera_like, max_images=12
    )
    assert (len(train), len(test)) == (12, 13)
    config = PretrainConfig.from_dict(TINY_PRETRAIN)

    straight = tmp_path / "straight.pt"
    pretrain_backbone(train, test, straight, config, source)

    class Interrupt(Exception):
        pass

    def stop_after_first(epoch):
        if epoch == 1:
            raise Interrupt

    resumed = tmp_path / "resumed.pt"
    with pytest.raises(Interrupt):
        pretrain_backbone(train, test, resumed, config, source, on_epoch_end=stop_after_first)
    checkpoint = torch.load(checkpoint_path(resumed), weights_only=True)
    assert checkpoint["epoch"] == 1
    assert not resumed.exists()

    with caplog.at_level(logging.INFO, logger="modelpred.data.backbone"):
        metadata = pretrain_backbone(train, test, resumed, config, source)
    assert "resuming pretraining" in caplog.text
    assert "test accuracy" in caplog.text
    assert not checkpoint_path(resumed).exists()
    assert [record["epoch"] for record in metadata["history"]] == [1, 2]
    assert 0.0 <= metadata["test_accuracy"] <= 1.0

    first = torch.load(straight, weights_only=True)
    second = torch.load(resumed, weights_only=True)
    assert all(torch.equal(first[key], second[key]) for key in first)
    loaded, sidecar = load_backbone(resumed)
    assert sidecar["backbone"] == "pretrained"
    assert sidecar["data"] == "imagefolder"


def test_pretraining_on_cifar10_binary(tmp_path):
    write_fake_cifar10(tmp_path / "cifar" / "cifar-10-batches-bin", n_per_file=4)
    train, test, source = load_pretraining_data(
        "cifar10", IMAGE_SIZE, seed=0, cifar10={"kind": "path", "path": str(tmp_path / "cifar")}
    )
    assert train.images.shape == (20, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert len(test) == 4
    config = PretrainConfig.from_dict({**TINY_PRETRAIN, "epochs": 1})
    metadata = pretrain_backbone(train, test, tmp_path / "cifar.pt", config, source)
    assert metadata["classes"][0] == "airplane"
    assert json.loads(metadata["source_sha256"])["test_batch.bin"]


# ----------------------------------------------------------------- experiments
@pytest.fixture(scope="module")
def nn_surrogate(hymenoptera_features, tmp_path_factory):
    """A data file and a tiny ModelPred surrogate of the nn model on the generated images."""
    folder = tmp_path_factory.mktemp("memorization")
    spec = {
        "source": {"kind": "path", "path": "unused"},
        "n_train": 14,
        "n_pool": 6,
        "n_test": 8,
        "models": ["nn"],
    }
    dataset = build_dataset("hymenoptera", spec, seed=0, features_path=hymenoptera_features)
    data_path = folder / "hymenoptera.h5"
    io.write_dataset(data_path, dataset)
    model = LastLayerNN(dataset.n_features, 2, steps=200)
    rng = np.random.default_rng(0)
    permutations = np.stack([rng.permutation(14) for _ in range(3)])
    fits = model.fit_prefixes(dataset.train.X, dataset.train.y, permutations)
    result = fit_surrogate(
        model,
        dataset.train.X,
        dataset.train.y,
        permutations,
        fits.theta,
        config=SurrogateConfig(epochs=2, hidden=8, batch_permutations=3, val_fraction=0.0),
    )
    surrogate_path = folder / "modelpred.pt"
    result.surrogate.save(surrogate_path)
    return data_path, surrogate_path


def test_memorization_panel_and_influence_pairs(nn_surrogate, hymenoptera_features, tmp_path):
    from modelpred.applications.memorization import read_removal_panel

    data_path, surrogate_path = nn_surrogate
    panel_path = tmp_path / "panel.h5"
    summary = image_experiments.run_subsampling_memorization(
        data_path,
        surrogate_path,
        panel_path,
        tmp_path / "summary.json",
        modelpred_subsets=40,
        solver_subsets=30,
        trials=2,
        n_thresholds=4,
    )
    panel = read_removal_panel(panel_path)
    assert panel.accuracy["modelpred"].shape == (2, 4)
    assert panel.x_axis == "threshold"
    assert 0.0 <= summary["full_accuracy"] <= 1.0
    arrays, attrs = io.read_arrays(
        panel_path, ("estimators/modelpred/influence", "estimators/solver/memorization")
    )
    assert arrays["estimators/modelpred/influence"].shape == (14, 8)
    assert arrays["estimators/solver/memorization"].shape == (2, 14)
    assert attrs["backbone"] == "random_init"

    paths = image_experiments.figure_influence_pairs(
        panel_path, hymenoptera_features, tmp_path / "fig8", n_rows=2, per_side=2
    )
    assert all(path.stat().st_size > 0 for path in paths)


def test_shapley_ablation_values(tmp_path):
    folder = write_fake_cifar10(tmp_path / "cifar-10-batches-bin", n_per_file=20)
    backbone_path = tmp_path / "random_init.pt"
    save_backbone(backbone_path, random_backbone(0, stem="imagenet"), {"backbone": "random_init"})
    attrs = image_experiments.run_shapley_ablation(
        backbone_path,
        folder,
        tmp_path / "values.h5",
        n_train=10,
        n_test=6,
        permutations=2,
        image_size=IMAGE_SIZE,
        device="cpu",
        block=1,
    )
    arrays, _ = io.read_arrays(tmp_path / "values.h5", ("values", "labels", "images"))
    assert arrays["values"].shape == (10,)
    assert arrays["images"].shape == (10, 32, 32, 3)
    assert attrs["backbone"] == "random_init"
    paths = image_experiments.figure_shapley_images(
        tmp_path / "values.h5", tmp_path / "fig12", n_classes=2, per_side=1, title="test"
    )
    assert all(path.stat().st_size > 0 for path in paths)


# ----------------------------------------------------------------- workflow
@pytest.mark.slow
@pytest.mark.skipif(
    not (HYMENOPTERA_DIR / "train").is_dir(),
    reason=f"Hymenoptera images not found in {HYMENOPTERA_DIR}; set MODELPRED_HYMENOPTERA_DIR",
)
def test_smoke_workflow_on_real_hymenoptera(smoke_results):
    # The shared smoke run enables Hymenoptera with a config file whenever the
    # images are at hand (conftest.py).
    results = smoke_results
    targets = [
        results / "figures" / "fig9_hymenoptera_nn.png",
        results / "figures" / "fig8_influence_pairs_hymenoptera.png",
        results / "memorization" / "hymenoptera" / "nn" / "subsampling_removal.h5",
    ]
    for target in targets:
        assert target.stat().st_size > 0
    data = io.read_dataset(results / "data" / "hymenoptera.h5")
    assert (len(data.train), len(data.pool), len(data.test)) == (20, 6, 10)
    assert data.attrs["backbone"] == "random_init"
    with h5py.File(results / "eval" / "hymenoptera" / "nn" / "deletion.h5") as handle:
        assert "modelpred" in handle["methods"]
