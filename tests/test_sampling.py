"""Permutation sampling: shard independence, layout and warm-started fits."""

import numpy as np
import pytest

from modelpred import io, sampling
from modelpred.models import make_model


def run_shards(model, dataset, n_perms, shards, seed, folder, block=5):
    # Blocks of 5 spread 23 permutations over all four shards.
    paths = []
    attrs = sampling.sample_attrs(model, seed, block, n_perms)
    for shard in range(shards):
        indices = sampling.shard_indices(n_perms, shards, shard, block)
        path = folder / f"shards{shards}-{shard}.h5"
        sampling.write_shard(
            path, sampling.sample_permutations(model, dataset, indices, seed, block), attrs
        )
        paths.append(path)
    merged = folder / f"merged{shards}.h5"
    sampling.merge_shards(paths, merged)
    return sampling.read_samples(merged)


@pytest.mark.parametrize("name", ["lr", "svm"])
def test_merged_samples_identical_for_1_and_4_shards(iris, tmp_path, name):
    model = make_model(name, iris.n_features, iris.n_classes)
    one, attrs = run_shards(model, iris, 23, 1, seed=5, folder=tmp_path)
    four, _ = run_shards(model, iris, 23, 4, seed=5, folder=tmp_path)
    for key in sampling.SAMPLE_ARRAYS:
        assert np.array_equal(one[key], four[key]), key
    assert attrs["base_model"] == name
    assert attrs["seed"] == 5


def test_samples_layout(iris, tmp_path):
    model = make_model("lr", iris.n_features, 2)
    arrays, attrs = run_shards(model, iris, 12, 2, seed=0, folder=tmp_path)
    n = len(iris.train)
    assert arrays["permutations"].dtype == np.int32
    assert arrays["permutations"].shape == (12, n)
    assert arrays["theta"].shape == (12, n, iris.n_features + 1)
    assert arrays["converged"].dtype == bool
    for row in arrays["permutations"]:
        assert sorted(row.tolist()) == list(range(n))
    assert attrs["lam"] == 1.0
    assert "row-major" in attrs["param_layout"]


def test_permutation_depends_only_on_seed_and_index():
    items = np.arange(50)
    assert np.array_equal(
        sampling.draw_permutation(3, 7, items), sampling.draw_permutation(3, 7, items)
    )
    assert not np.array_equal(
        sampling.draw_permutation(3, 7, items), sampling.draw_permutation(3, 8, items)
    )


@pytest.mark.parametrize("n_perms,shards", [(23, 1), (23, 4), (5, 3), (100, 7)])
def test_shards_cover_every_permutation_once(n_perms, shards):
    covered = np.concatenate([sampling.shard_indices(n_perms, shards, k) for k in range(shards)])
    assert np.array_equal(np.sort(covered), np.arange(n_perms))


def test_default_permutation_count():
    assert sampling.n_permutations(300) == 50
    assert sampling.n_permutations(67) == 224


def test_subgroup_permutes_only_the_subgroup(iris, tmp_path):
    subgroup = np.arange(10, 30)
    dataset = io.Dataset(iris.train, iris.test, iris.pool, {**iris.attrs, "subgroup": subgroup})
    model = make_model("lr", iris.n_features, 2)
    arrays, _ = run_shards(model, dataset, 3, 1, seed=0, folder=tmp_path)
    assert arrays["permutations"].shape == (3, 20)
    assert set(arrays["permutations"].ravel()) == set(subgroup.tolist())
    assert len(arrays["fixed"]) == len(iris.train) - 20
    # The first prefix contains the fixed points plus one subgroup point.
    rows = np.r_[arrays["fixed"], arrays["permutations"][0, :1]]
    expected = model.fit(iris.train.X[rows], iris.train.y[rows])
    np.testing.assert_allclose(arrays["theta"][0, 0], expected, rtol=1e-7, atol=1e-9)


def test_merge_rejects_missing_shard(iris, tmp_path):
    model = make_model("lr", iris.n_features, 2)
    attrs = sampling.sample_attrs(model, 0, sampling.DEFAULT_BLOCK, 60)
    path = tmp_path / "only.h5"
    sampling.write_shard(
        path, sampling.sample_permutations(model, iris, sampling.shard_indices(60, 2, 0), 0), attrs
    )
    with pytest.raises(io.FormatError, match="exactly once"):
        sampling.merge_shards([path], tmp_path / "merged.h5")
