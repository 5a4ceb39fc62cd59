"""Provenance of workflow outputs: job attributes, merged samples and every smoke-run HDF5 file."""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from snakemake.iocontainers import Namedlist

from modelpred import io, sampling
from modelpred.models import make_model

ROOT = Path(__file__).resolve().parent.parent


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Unserialisable:
    def __str__(self) -> str:
        return "unserialisable value"


@pytest.fixture
def job(tmp_path):
    """A fake job with a named file, a list of files, a folder and odd params."""
    (tmp_path / "data.h5").write_bytes(b"data bytes")
    (tmp_path / "shard-0.h5").write_bytes(b"first shard")
    (tmp_path / "shard-1.h5").write_bytes(b"second shard")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"an image")
    return SimpleNamespace(
        rule="merge_samples",
        input={
            "data": str(tmp_path / "data.h5"),
            "shards": [str(tmp_path / "shard-0.h5"), tmp_path / "shard-1.h5"],
            "images": str(tmp_path / "images"),
        },
        params={"seed": 7, "lam": 0.5, "odd": Unserialisable(), "spec": {"n_train": 20}},
        wildcards={"dataset": "iris", "model": "lr"},
        config={"seed": 3, "results_dir": str(tmp_path), "sampling": {"shards": 2}},
    )


def test_job_provenance_records_job(job):
    attrs = io.job_provenance(job)
    assert attrs["rule"] == "merge_samples"
    assert attrs["format_version"] == io.FORMAT_VERSION
    assert json.loads(attrs["wildcards"]) == {"dataset": "iris", "model": "lr"}
    assert json.loads(attrs["config"]) == job.config
    assert json.loads(attrs["package_versions"]) == io.package_versions()
    assert json.loads(attrs["seeds"]) == {"config": 3, "params": 7}
    params = json.loads(attrs["params"])
    assert params["lam"] == 0.5
    assert params["spec"] == {"n_train": 20}
    assert params["odd"] == "unserialisable value"


def test_job_provenance_hashes_input_files(job, tmp_path):
    attrs = io.job_provenance(job, extra_inputs={"sidecar": tmp_path / "images" / "a.png"})
    checksums = json.loads(attrs["input_sha256"])
    assert checksums == {
        "data": sha256_of(tmp_path / "data.h5"),
        "shards[0]": sha256_of(tmp_path / "shard-0.h5"),
        "shards[1]": sha256_of(tmp_path / "shard-1.h5"),
        "sidecar": sha256_of(tmp_path / "images" / "a.png"),
    }
    # A folder is recorded by its path only.
    paths = json.loads(attrs["input_paths"])
    assert paths["images"] == str(tmp_path / "images")
    assert paths["shards[1]"] == str(tmp_path / "shard-1.h5")
    assert "images" not in checksums


def test_job_provenance_names_unnamed_inputs(tmp_path):
    # Snakemake passes inputs as a Namedlist, where unnamed files sit beside named ones.
    for name in ("shard-0.h5", "shard-1.h5", "data.h5"):
        (tmp_path / name).write_bytes(name.encode())
    inputs = Namedlist(
        toclone=[str(tmp_path / "shard-0.h5"), str(tmp_path / "shard-1.h5")],
        fromdict={"data": str(tmp_path / "data.h5")},
    )
    job = SimpleNamespace(
        rule="merge_samples", input=inputs, params=Namedlist(), wildcards=Namedlist(), config={}
    )
    attrs = io.job_provenance(job)
    assert json.loads(attrs["input_sha256"]) == {
        "input[0]": sha256_of(tmp_path / "shard-0.h5"),
        "input[1]": sha256_of(tmp_path / "shard-1.h5"),
        "data": sha256_of(tmp_path / "data.h5"),
    }
    assert json.loads(attrs["seeds"]) == {}
    assert json.loads(attrs["params"]) == {}


def test_provenance_round_trips_through_hdf5(job, tmp_path):
    path = tmp_path / "out.h5"
    io.write_arrays(path, {"x": np.arange(3)}, io.job_provenance(job))
    _, attrs = io.read_arrays(path, ("x",))
    provenance = io.decode_provenance(attrs)
    assert provenance["rule"] == "merge_samples"
    assert provenance["config"]["seed"] == 3
    assert provenance["input_sha256"]["data"] == sha256_of(tmp_path / "data.h5")


def write_shards(dataset, folder, data_sha256):
    """Write two shards of five permutations, each with shard-job provenance."""
    model = make_model("lr", dataset.n_features, dataset.n_classes)
    attrs = sampling.sample_attrs(model, 0, 5, 10)
    paths = []
    for shard, checksum in enumerate(data_sha256):
        indices = sampling.shard_indices(10, 2, shard, 5)
        shard_attrs = {
            **attrs,
            "rule": "sample_shard",
            "wildcards": json.dumps({"shard": str(shard)}),
            "input_sha256": json.dumps({"data": checksum}),
        }
        path = folder / f"shard-{shard}.h5"
        samples = sampling.sample_permutations(model, dataset, indices, 0, 5)
        sampling.write_shard(path, samples, shard_attrs)
        paths.append(path)
    return paths


def test_merged_samples_record_merge_job(iris, tmp_path):
    paths = write_shards(iris, tmp_path, ["d" * 64, "d" * 64])
    job = SimpleNamespace(
        rule="merge_samples",
        input=[str(path) for path in paths],
        params={},
        wildcards={"dataset": "iris", "model": "lr"},
        config={"seed": 0},
    )
    merged = tmp_path / "merged.h5"
    sampling.merge_shards(paths, merged, extra_attrs=io.job_provenance(job))

    arrays, attrs = sampling.read_samples(merged)
    assert arrays["converged"].shape == arrays["permutations"].shape
    assert arrays["kkt_residual"].shape == arrays["permutations"].shape
    assert attrs["rule"] == "merge_samples"
    assert json.loads(attrs["wildcards"]) == {"dataset": "iris", "model": "lr"}
    assert json.loads(attrs["shard_input_sha256"]) == {"data": "d" * 64}
    assert json.loads(attrs["input_sha256"]) == {
        "input[0]": sha256_of(paths[0]),
        "input[1]": sha256_of(paths[1]),
    }


def test_merge_rejects_shards_of_other_data(iris, tmp_path):
    paths = write_shards(iris, tmp_path, ["d" * 64, "e" * 64])
    with pytest.raises(io.FormatError, match="'input_sha256' .* differs"):
        sampling.merge_shards(paths, tmp_path / "merged.h5")


# --------------------------------------------------------------------------- workflow


def resolve(path: str) -> Path:
    """Return an input path as the workflow saw it: relative paths start at the repository."""
    return Path(path) if Path(path).is_absolute() else ROOT / path


@pytest.mark.slow
def test_smoke_outputs_record_provenance(smoke_results):
    files = sorted(smoke_results.rglob("*.h5"))
    assert files
    checked = 0
    for path in files:
        with h5py.File(path, "r") as handle:
            provenance = io.decode_provenance(dict(handle.attrs))
        name = str(path.relative_to(smoke_results))
        assert provenance.get("format_version") == io.FORMAT_VERSION, name
        assert "numpy" in provenance.get("package_versions", {}), name
        assert provenance.get("config", {}).get("seed") == 0, name
        assert "rule" in provenance, name
        assert "input_sha256" in provenance, name
        for role, checksum in provenance["input_sha256"].items():
            source = resolve(provenance["input_paths"][role])
            if source.is_file():
                assert sha256_of(source) == checksum, f"{name}: {role}"
                checked += 1
    # The smoke run keeps its intermediate files, so checksums were compared.
    assert checked > 0
