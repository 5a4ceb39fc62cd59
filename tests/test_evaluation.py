"""Scenarios, ground truth, predictors and the eval file layout."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modelpred.evaluation import (
    PAPER_SCENARIOS,
    default_scenarios,
    evaluate_scenario,
    make_scenario,
    read_eval,
    resolve_scenarios,
    scenario_sizes,
    single_thread,
    stacked_points,
    surrogate_predictor,
    write_eval,
)
from modelpred.io import FORMAT_VERSION, provenance_attrs
from modelpred.models import make_model
from modelpred.sampling import sample_permutations

SPAM_SPEC = {
    "trials": 3,
    "deletion": {"start": 300, "sizes": {"step": 5, "last": 150}},
    "addition": {"start": 150, "sizes": {"step": 5, "last": 150}},
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run the small solves on one thread, which is much faster than two on a busy machine."""
    with single_thread():
        yield


# ------------------------------------------------------------------ specs
def test_sizes_from_list_and_range():
    np.testing.assert_array_equal(scenario_sizes({"sizes": [1, 2, 5]}), [1, 2, 5])
    np.testing.assert_array_equal(
        scenario_sizes({"sizes": {"step": 5, "last": 20}}), [5, 10, 15, 20]
    )
    np.testing.assert_array_equal(
        scenario_sizes({"sizes": {"first": 2, "step": 4, "last": 12}}), [2, 6, 10]
    )


@pytest.mark.parametrize(
    "sizes", [[], [5, 5], [3, 1], [0, 1], {"step": 5}, {"step": 0, "last": 5}, "5,10"]
)
def test_sizes_rejects_invalid(sizes):
    with pytest.raises(ValueError):
        scenario_sizes({"sizes": sizes})


def test_default_scenarios_match_table_one():
    spec = default_scenarios(300, 150)
    np.testing.assert_array_equal(scenario_sizes(spec["deletion"]), np.arange(5, 151, 5))
    np.testing.assert_array_equal(scenario_sizes(spec["addition"]), np.arange(5, 151, 5))
    assert spec["deletion"]["start"] == 300
    assert spec["addition"]["start"] == 150
    assert spec["trials"] == 10


def test_default_scenarios_small_pool_and_subgroup():
    spec = default_scenarios(67, 17)
    assert scenario_sizes(spec["addition"])[-1] == 17
    assert "addition" not in default_scenarios(100, 0)

    subgroup = default_scenarios(10000, 0, subgroup_size=500)
    np.testing.assert_array_equal(scenario_sizes(subgroup["deletion"]), np.arange(5, 501, 5))
    assert "addition" not in subgroup


def test_resolve_uses_paper_sizes_when_they_fit():
    assert resolve_scenarios("iris", 67, 17)["deletion"] == PAPER_SCENARIOS["iris"]["deletion"]
    assert (
        resolve_scenarios("spam-flip10", 300, 150)["addition"]
        == PAPER_SCENARIOS["spam"]["addition"]
    )


def test_resolve_falls_back_and_applies_overrides():
    small = resolve_scenarios("spam", 60, 30)
    assert small["deletion"]["start"] == 60
    assert scenario_sizes(small["addition"])[-1] == 30

    # A pool too small for the paper's mnist-2000 addition keeps its deletion sizes.
    mnist = resolve_scenarios("mnist-2000", 2000, 500)
    assert mnist["deletion"] == PAPER_SCENARIOS["mnist-2000"]["deletion"]
    # The default steps of 2000 / 60 ≈ 33 points stop at 495, the last multiple below 500.
    assert scenario_sizes(mnist["addition"])[-1] == 495

    adult = resolve_scenarios("adult", 10000, 0, subgroup_size=500)
    assert adult == {"trials": 10, "deletion": PAPER_SCENARIOS["adult"]["deletion"]}

    override = {"trials": 2, "addition": None, "deletion": {"start": 60, "sizes": [1, 2]}}
    spec = resolve_scenarios("spam", 60, 30, override=override)
    assert spec == {"trials": 2, "deletion": {"start": 60, "sizes": [1, 2]}}

    with pytest.raises(ValueError, match="unknown scenario key"):
        resolve_scenarios("spam", 60, 30, override={"deletions": {}})


# ---------------------------------------------------------------- subsets
def test_deletion_masks_sizes_and_pool():
    spec = {"trials": 4, "deletion": {"start": 63, "sizes": [5, 10, 20, 30]}}
    scenario = make_scenario("deletion", spec, n_train=67, n_pool=17, seed=0)

    assert scenario.mask.shape == (16, 84)
    assert scenario.mask.dtype == bool
    np.testing.assert_array_equal(scenario.trial, np.repeat(np.arange(4), 4))
    np.testing.assert_array_equal(scenario.size, np.tile([5, 10, 20, 30], 4))
    np.testing.assert_array_equal(scenario.mask.sum(axis=1), 63 - scenario.size)
    assert not scenario.mask[:, 67:].any()
    assert not scenario.start_mask[:, 67:].any()
    np.testing.assert_array_equal(scenario.start_mask.sum(axis=1), 63)
    for t in range(4):
        rows = np.nonzero(scenario.trial == t)[0]
        start = scenario.start_mask[rows[0]]
        assert (scenario.start_mask[rows] == start).all()
        assert not (scenario.mask[rows] & ~start).any()
        # Sizes draw their groups independently, so groups are not nested.
        removed = [start & ~scenario.mask[row] for row in rows]
        assert any(
            (small & ~large).any() for small, large in zip(removed[:-1], removed[1:], strict=True)
        )
    # Trials draw different start sets and groups.
    assert not np.array_equal(scenario.mask[0], scenario.mask[4])


def test_addition_masks_sizes_and_pool():
    spec = {"trials": 3, "addition": {"start": 150, "sizes": {"step": 5, "last": 150}}}
    scenario = make_scenario("addition", spec, n_train=300, n_pool=150, seed=0)

    assert scenario.mask.shape == (90, 450)
    np.testing.assert_array_equal(scenario.mask[:, :300].sum(axis=1), 150)
    np.testing.assert_array_equal(scenario.mask[:, 300:].sum(axis=1), scenario.size)
    np.testing.assert_array_equal(scenario.mask[:, :300], scenario.start_mask[:, :300])
    assert not scenario.start_mask[:, 300:].any()
    # The whole pool is added at the largest size.
    assert scenario.mask[scenario.size == 150][:, 300:].all()


def test_scenarios_are_deterministic():
    first = make_scenario("deletion", SPAM_SPEC, 300, 150, seed=7)
    second = make_scenario("deletion", SPAM_SPEC, 300, 150, seed=7)
    other_seed = make_scenario("deletion", SPAM_SPEC, 300, 150, seed=8)
    np.testing.assert_array_equal(first.mask, second.mask)
    assert not np.array_equal(first.mask, other_seed.mask)


def test_more_trials_keep_earlier_trials():
    few = make_scenario("addition", SPAM_SPEC, 300, 150, seed=0)
    many = make_scenario("addition", {**SPAM_SPEC, "trials": 5}, 300, 150, seed=0)
    np.testing.assert_array_equal(many.mask[: len(few.mask)], few.mask)


def test_deletion_within_subgroup():
    subgroup = np.arange(40, 60)
    spec = {"trials": 3, "deletion": {"start": 100, "sizes": [5, 10, 20]}}
    scenario = make_scenario("deletion", spec, n_train=100, n_pool=0, seed=0, subgroup=subgroup)

    fixed = np.setdiff1d(np.arange(100), subgroup)
    assert scenario.mask[:, fixed].all()
    np.testing.assert_array_equal(20 - scenario.mask[:, subgroup].sum(axis=1), scenario.size)

    with pytest.raises(ValueError, match="starts from all"):
        make_scenario(
            "deletion", {"deletion": {"start": 90, "sizes": [5]}}, 100, 0, 0, subgroup=subgroup
        )
    with pytest.raises(ValueError, match="removable"):
        make_scenario(
            "deletion", {"deletion": {"start": 100, "sizes": [25]}}, 100, 0, 0, subgroup=subgroup
        )


def test_scenario_rejects_sizes_beyond_pool_or_start():
    with pytest.raises(ValueError, match="pool of 17"):
        make_scenario("addition", {"addition": {"start": 67, "sizes": [18]}}, 67, 17, 0)
    with pytest.raises(ValueError, match="empty set"):
        make_scenario("deletion", {"deletion": {"start": 30, "sizes": [30]}}, 67, 17, 0)
    with pytest.raises(ValueError, match="no 'addition' entry"):
        make_scenario("addition", {"deletion": {"start": 30, "sizes": [3]}}, 67, 17, 0)


# ------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def iris_deletion(iris):
    model = make_model("lr", iris.n_features, iris.n_classes)
    with single_thread():
        samples = sample_permutations(model, iris, range(6), seed=0)

    def constant(X, y, masks):
        return {"theta": None, "utility": np.full(len(masks), 0.5)}

    def refit(X, y, masks):
        return {"theta": np.stack([model.fit(X[m], y[m]) for m in masks]), "utility": None}

    spec = {"trials": 2, "deletion": {"start": 63, "sizes": {"step": 5, "last": 30}}}
    with single_thread():
        result = evaluate_scenario(
            model,
            iris,
            "deletion",
            spec,
            seed=0,
            predictors={"constant": constant, "refit": refit},
            samples=samples,
        )
    return model, result


def test_evaluate_ground_truth(iris, iris_deletion):
    model, result = iris_deletion
    X, y = stacked_points(iris)
    row = 3
    mask = result["mask"][row]
    np.testing.assert_allclose(
        result["theta_true"][row], model.fit(X[mask], y[mask]), rtol=1e-10, atol=1e-12
    )
    expected_utility = model.numpy_eval("utility", result["theta_true"], iris.test.X, iris.test.y)
    np.testing.assert_allclose(result["utility_true"], expected_utility)


def test_evaluate_runs_every_method(iris_deletion):
    _, result = iris_deletion
    methods = result["methods"]
    assert set(methods) == {"influence", "datamodel", "constant", "refit"}
    assert methods["influence"]["theta"].shape == result["theta_true"].shape
    assert methods["datamodel"]["theta"] is None
    for output in methods.values():
        assert output["utility"].shape == (12,)
        assert output["seconds"] > 0
    # A predictor that returns θ gets its utility computed like the ground truth's.
    np.testing.assert_allclose(methods["refit"]["utility"], result["utility_true"], rtol=1e-9)


def test_evaluate_addition_skips_datamodel(iris):
    model = make_model("lr", iris.n_features, iris.n_classes)
    spec = {"trials": 1, "addition": {"start": 67, "sizes": [1, 5, 17]}}
    samples = sample_permutations(model, iris, range(2), seed=0)
    result = evaluate_scenario(model, iris, "addition", spec, seed=0, samples=samples)
    assert set(result["methods"]) == {"influence"}
    assert result["mask"][:, 67:].sum(axis=1).tolist() == [1, 5, 17]


def test_evaluate_rejects_bad_predictor_output(iris):
    model = make_model("lr", iris.n_features, iris.n_classes)
    spec = {"trials": 1, "deletion": {"start": 67, "sizes": [1, 2]}}

    def wrong_shape(X, y, masks):
        return {"theta": np.zeros((len(masks), 2)), "utility": None}

    with pytest.raises(ValueError, match="theta of shape"):
        evaluate_scenario(
            model, iris, "deletion", spec, 0, predictors={"bad": wrong_shape}, baselines=()
        )
    with pytest.raises(ValueError, match="also baselines"):
        evaluate_scenario(model, iris, "deletion", spec, 0, predictors={"influence": wrong_shape})


def test_eval_file_layout(tmp_path, iris, iris_deletion):
    _, result = iris_deletion
    path = tmp_path / "eval" / "iris" / "lr" / "deletion.h5"
    write_eval(path, result, provenance_attrs(config={"seed": 0}))

    n_columns = len(iris.train) + len(iris.pool)
    with h5py.File(path, "r") as handle:
        assert handle["trial"].shape == (12,)
        assert handle["size"].shape == (12,)
        assert handle["mask"].shape == (12, n_columns)
        assert handle["mask"].dtype == bool
        assert handle["theta_true"].shape == (12, 5)
        assert handle["utility_true"].shape == (12,)
        assert set(handle["methods"]) == {"influence", "datamodel", "constant", "refit"}
        assert handle["methods/influence/theta"].shape == (12, 5)
        assert handle["methods/influence/utility"].shape == (12,)
        assert "theta" not in handle["methods/datamodel"]
        assert handle["methods/datamodel"].attrs["seconds"] > 0
        assert handle.attrs["dataset"] == "iris"
        assert handle.attrs["base_model"] == "lr"
        assert handle.attrs["scenario"] == "deletion"
        assert handle.attrs["format_version"] == FORMAT_VERSION
        assert "package_versions" in handle.attrs
        ran = json.loads(handle.attrs["scenario_spec"])
        assert ran == {"trials": 2, "start": 63, "sizes": [5, 10, 15, 20, 25, 30]}

    back = read_eval(path)
    np.testing.assert_array_equal(back["mask"], result["mask"])
    np.testing.assert_array_equal(
        back["methods"]["influence"]["theta"], result["methods"]["influence"]["theta"]
    )
    assert back["methods"]["constant"]["theta"] is None


def test_surrogate_predictor_adapter(tmp_path, iris):
    from modelpred.surrogate.network import DeepSets
    from modelpred.surrogate.predictor import Surrogate

    model = make_model("lr", iris.n_features, iris.n_classes)
    network = DeepSets(iris.n_features, iris.n_classes, model.n_params, hidden=8, layers=2)
    path = tmp_path / "paralearn.pt"
    Surrogate(network, model, "paralearn", metadata={"config": {"hidden": 8, "layers": 2}}).save(
        path
    )

    predictor = surrogate_predictor(path, model, iris)
    X, y = stacked_points(iris)
    masks = np.ones((3, len(y)), dtype=bool)
    masks[1, :10] = False
    output = predictor(X, y, masks)
    assert output["theta"].shape == (3, model.n_params)
    assert output["utility"] is None

    other = make_model("lr", iris.n_features, iris.n_classes, lam=2.0)
    with pytest.raises(ValueError, match="trained for base model"):
        surrogate_predictor(path, other, iris)
