"""Tests of the DeepSets surrogate: losses, prefix sums, training, resuming and files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

from modelpred.io import Dataset, FormatError, Split, write_arrays, write_dataset
from modelpred.models import make_model
from modelpred.surrogate import (
    DeepSets,
    Surrogate,
    SurrogateConfig,
    checkpoint_path,
    encode_elements,
    fit_surrogate,
    kkt_loss,
    load_surrogate,
    prefix_masks,
    train_surrogate,
    utility_loss,
)

N_TRAIN = 67


def _iris(classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return Iris train and test (X, y) of the first ``classes`` classes, rows of norm <= 1."""
    X, y = load_iris(return_X_y=True)
    keep = y < classes
    X, y = X[keep], y[keep]
    X = X / np.linalg.norm(X, axis=1).max()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    return X[train], y[train], X[test], y[test]


@pytest.fixture(scope="module")
def iris_lr():
    """Binary Iris with `lr` prefix fits of 30 training and 8 held-out permutations."""
    X, y, X_test, y_test = _iris(2)
    model = make_model("lr", X.shape[1], 2, 1.0)
    rng = np.random.default_rng(1)
    permutations = np.stack([rng.permutation(N_TRAIN) for _ in range(38)])
    fits = model.fit_prefixes(X, y, permutations)
    assert fits.converged.all()
    return {
        "model": model,
        "X": X,
        "y": y,
        "X_test": X_test,
        "y_test": y_test,
        "permutations": permutations,
        "fits": fits,
    }


def _tiny_config(**overrides) -> SurrogateConfig:
    values = {"hidden": 8, "layers": 2, "epochs": 6, "batch_permutations": 4, "patience": 50}
    return SurrogateConfig(**{**values, **overrides})


# --------------------------------------------------------------------- losses
@pytest.mark.parametrize("name, classes", [("lr", 2), ("lr", 3), ("svm", 2)])
def test_kkt_term_equals_autograd_gradient(name, classes):
    X, y, _, _ = _iris(classes)
    model = make_model(name, X.shape[1], classes, 0.7)
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(
        5, model.n_params, generator=generator, dtype=torch.float64, requires_grad=True
    )
    masks = (torch.rand(5, len(y), generator=generator) < 0.5).to(torch.float64)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    objective = model.objective(theta, Xt, yt, masks).sum()
    (autograd,) = torch.autograd.grad(objective, theta)
    ours = kkt_loss(model, theta.detach(), Xt, yt, masks)

    torch.testing.assert_close(ours, autograd.norm(dim=1), rtol=1e-10, atol=1e-10)


def test_utility_term_matches_direct_computation():
    X, y, _, _ = _iris(3)
    model = make_model("lr", X.shape[1], 3, 1.0)
    rng = np.random.default_rng(2)
    theta_pred = rng.normal(size=(4, model.n_params))
    theta_true = rng.normal(size=(4, model.n_params))
    members = [rng.choice(len(y), size=size, replace=False) for size in (1, 5, 30, len(y))]
    masks = np.zeros((4, len(y)))
    for row, subset in enumerate(members):
        masks[row, subset] = 1.0

    expected = []
    for row, subset in enumerate(members):
        pred_losses = model.numpy_eval("point_losses", theta_pred[row], X[subset], y[subset])
        true_losses = model.numpy_eval("point_losses", theta_true[row], X[subset], y[subset])
        expected.append(abs(pred_losses.mean() - true_losses.mean()))
    Xt, yt, masks_t = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(masks)
    train_loss_true = model.train_loss(torch.from_numpy(theta_true), Xt, yt, masks_t)
    ours = utility_loss(model, torch.from_numpy(theta_pred), Xt, yt, masks_t, train_loss_true)

    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_prefix_masks_are_lower_triangular_in_permuted_order():
    permutations = torch.tensor([[2, 0, 3], [1, 3, 0]])
    masks = prefix_masks(permutations, n_points=5, fixed=torch.tensor([4]))

    assert masks.shape == (2, 3, 5)
    assert masks[0, 0].tolist() == [0, 0, 1, 0, 1]
    assert masks[0, 2].tolist() == [1, 0, 1, 1, 1]
    assert masks[1, 1].tolist() == [0, 1, 0, 1, 1]
    for t in range(2):
        permuted = masks[t][:, permutations[t]]
        assert torch.equal(permuted, torch.tril(torch.ones(3, 3)))


# --------------------------------------------------------------------- network
def test_prefix_sums_equal_per_subset_forward():
    X, y, _, _ = _iris(3)
    torch.manual_seed(0)
    network = DeepSets(X.shape[1], 3, n_outputs=15, hidden=32, layers=3)
    network.set_normalisation(len(y), torch.randn(50, 15))
    elements = encode_elements(torch.from_numpy(X).float(), torch.from_numpy(y), 3)
    permutations = torch.from_numpy(
        np.stack([np.random.default_rng(t).permutation(60) for t in range(3)])
    )
    fixed = torch.arange(60, 67)

    with torch.no_grad():
        fast = network.forward_prefixes(elements, permutations, fixed)  # (3, 60, 15)
        for t in range(3):
            for i in range(60):
                members = torch.cat([fixed, permutations[t, : i + 1]])
                direct = network.readout(network.embed(elements[members]).sum(dim=0))
                torch.testing.assert_close(fast[t, i], direct, rtol=1e-5, atol=1e-5)


def test_predictions_ignore_padding_and_batch(iris_lr):
    data = iris_lr
    result = fit_surrogate(
        data["model"],
        data["X"],
        data["y"],
        data["permutations"][:8],
        data["fits"].theta[:8],
        config=_tiny_config(epochs=2),
    )
    surrogate = result.surrogate
    X, y = data["X"], data["y"]
    subset = np.arange(0, 40, 3)
    masks = np.zeros((6, len(y)), dtype=bool)
    masks[0, subset] = True
    masks[1:, :] = np.random.default_rng(3).random((5, len(y))) < 0.5

    alone = surrogate.predict(X, y, masks[:1])
    batched = surrogate.predict(X, y, masks)
    as_set = surrogate.predict_sets([(X[subset], y[subset])])
    # Extra points that the mask leaves out act as padding.
    padded_X = np.concatenate([X, np.ones((5, X.shape[1]))])
    padded_y = np.concatenate([y, np.zeros(5, dtype=np.int64)])
    padded = surrogate.predict(padded_X, padded_y, np.pad(masks[:1], ((0, 0), (0, 5))))

    np.testing.assert_allclose(batched[:1], alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(as_set, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-6)


def test_surrogate_prefix_path_equals_masks(iris_lr):
    data = iris_lr
    result = fit_surrogate(
        data["model"],
        data["X"],
        data["y"],
        data["permutations"][:8],
        data["fits"].theta[:8],
        config=_tiny_config(epochs=2),
    )
    X, y = data["X"], data["y"]
    permutations = data["permutations"][30:32]

    fast = result.surrogate.predict_prefixes(X, y, permutations)  # (2, 67, 5)
    masks = prefix_masks(torch.from_numpy(permutations), len(y)).reshape(-1, len(y)).numpy()
    direct = result.surrogate.predict(X, y, masks).reshape(fast.shape)

    np.testing.assert_allclose(fast, direct, rtol=1e-5, atol=1e-5)


def test_one_class_subsets_get_zero_theta(iris_lr):
    data = iris_lr
    result = fit_surrogate(
        data["model"],
        data["X"],
        data["y"],
        data["permutations"][:8],
        data["fits"].theta[:8],
        config=_tiny_config(epochs=1),
    )
    X, y = data["X"], data["y"]
    only_zeros = np.flatnonzero(y == 0)[:5]

    theta = result.surrogate.predict_sets([(X[only_zeros], y[only_zeros]), (X[:0], y[:0])])

    assert np.array_equal(theta, np.zeros((2, data["model"].n_params)))


# --------------------------------------------------------------------- training
def test_modelpred_lowers_kkt_and_beats_mean_theta(iris_lr):
    data = iris_lr
    model, X, y = data["model"], data["X"], data["y"]
    train, held_out = slice(0, 30), slice(30, None)
    fits = data["fits"]
    config = SurrogateConfig(
        hidden=32, epochs=100, patience=100, lr=3e-3, batch_permutations=8, seed=0
    )

    def held_out_metrics(method: str) -> tuple[float, float]:
        result = fit_surrogate(
            model,
            X,
            y,
            data["permutations"][train],
            fits.theta[train],
            method=method,
            config=config,
            one_class=fits.one_class[train],
        )
        permutations = data["permutations"][held_out]
        theta_hat = result.surrogate.predict_prefixes(X, y, permutations)
        masks = prefix_masks(torch.from_numpy(permutations), len(y), dtype=torch.float64)
        kkt = kkt_loss(
            model,
            torch.from_numpy(theta_hat).reshape(-1, model.n_params),
            torch.from_numpy(X),
            torch.from_numpy(y),
            masks.reshape(-1, len(y)),
        ).reshape(theta_hat.shape[:2])
        solved = ~fits.one_class[held_out]
        error = np.linalg.norm(theta_hat - fits.theta[held_out], axis=-1).mean()
        return float(kkt.numpy()[solved].mean()), float(error)

    kkt_modelpred, error_modelpred = held_out_metrics("modelpred")
    kkt_paralearn, _ = held_out_metrics("paralearn")
    mean_theta = fits.theta[train].reshape(-1, model.n_params).mean(axis=0)
    error_mean = np.linalg.norm(fits.theta[held_out] - mean_theta, axis=-1).mean()

    assert kkt_modelpred < kkt_paralearn
    assert error_modelpred < error_mean


def _prefix_trainer(data, **overrides):
    """Build the trainer that fit_surrogate builds, for checks of its loss sums."""
    from modelpred.surrogate import trainer as trainer_module

    model, X, y = data["model"], data["X"], data["y"]
    permutations, theta = data["permutations"][:8], data["fits"].theta[:8]
    config = _tiny_config(**overrides)
    torch.manual_seed(0)
    targets = trainer_module._make_targets(model, "modelpred", theta, None, None)
    network = trainer_module._init_network(model, config, targets, permutations.shape[1])
    return trainer_module._PrefixTrainer(
        model,
        network,
        "modelpred",
        config,
        torch.device("cpu"),
        X,
        y,
        permutations,
        targets,
        solved=~data["fits"].one_class[:8],
        train_loss_true=trainer_module._prefix_train_losses(model, theta, X, y, permutations, None),
        fixed=None,
    )


def test_regulariser_prefixes_estimate_full_sums(iris_lr):
    exact = _prefix_trainer(iris_lr)
    drawn = _prefix_trainer(iris_lr, regulariser_prefixes=5)
    drawn.network.load_state_dict(exact.network.state_dict())
    ids = torch.arange(8)
    full_sums, rows = exact.batch_terms(ids, (1.0, 1.0, 0.0), train=False)
    assert rows == 8 * N_TRAIN

    rng = np.random.default_rng(3)
    estimates = torch.stack(
        [drawn.batch_terms(ids, (1.0, 1.0, 0.0), train=False, rng=rng)[0] for _ in range(400)]
    )
    # The parameter term always covers every prefix.
    torch.testing.assert_close(estimates[:, 0], full_sums[0].expand(400), rtol=1e-6, atol=0)
    # 5 of 67 prefixes per permutation: single draws scatter, their mean does not.
    assert estimates[:, 1].std() > 0.01 * full_sums[1]
    torch.testing.assert_close(estimates[:, 1:].mean(dim=0), full_sums[1:], rtol=0.03, atol=0)


def test_marginal_term_equals_direct_computation(iris_lr):
    trainer = _prefix_trainer(iris_lr)
    ids = torch.arange(8)
    sums, _ = trainer.batch_terms(ids, (0.0, 0.0, 1.0), train=False)

    # Independently: predict every prefix from explicit masks with the network's forward.
    permutations = iris_lr["permutations"][:8]
    theta = iris_lr["fits"].theta[:8]
    one_class = iris_lr["fits"].one_class[:8]
    masks = prefix_masks(torch.from_numpy(permutations), N_TRAIN, dtype=torch.float32)
    with torch.no_grad():
        prediction = trainer.network(trainer.elements, masks.reshape(-1, N_TRAIN))
    prediction = prediction.reshape(8, N_TRAIN, -1).double().numpy()
    expected = 0.0
    for t in range(8):
        for i in range(1, N_TRAIN):
            if one_class[t, i] or one_class[t, i - 1]:
                continue
            step = (prediction[t, i] - prediction[t, i - 1]) - (theta[t, i] - theta[t, i - 1])
            expected += (i + 1) * np.linalg.norm(step)
    assert sums[3].item() == pytest.approx(expected, rel=1e-4)
    assert sums[1].item() == 0.0


def test_marginal_term_improves_held_out_steps(iris_lr):
    data = iris_lr
    model, X, y, fits = data["model"], data["X"], data["y"], data["fits"]
    held_out = data["permutations"][30:]
    true_steps = np.diff(fits.theta[30:], axis=1)
    solved = ~(fits.one_class[30:, 1:] | fits.one_class[30:, :-1])

    def step_error(w_marginal: float) -> float:
        config = SurrogateConfig(
            hidden=32, epochs=60, patience=60, lr=3e-3, batch_permutations=8, w_marginal=w_marginal
        )
        result = fit_surrogate(
            model, X, y, data["permutations"][:30], fits.theta[:30], config=config
        )
        predicted_steps = np.diff(result.surrogate.predict_prefixes(X, y, held_out), axis=1)
        return float(np.linalg.norm(predicted_steps - true_steps, axis=-1)[solved].mean())

    # With the term, the error is about three quarters of the error without it.
    assert step_error(5.0) < 0.9 * step_error(0.0)


def test_regulariser_prefixes_at_length_are_exact(iris_lr):
    exact = _prefix_trainer(iris_lr)
    every = _prefix_trainer(iris_lr, regulariser_prefixes=N_TRAIN)
    every.network.load_state_dict(exact.network.state_dict())
    ids = torch.arange(8)
    rng = np.random.default_rng(0)
    full_sums, _ = exact.batch_terms(ids, (1.0, 1.0, 0.0), train=False)
    same_sums, _ = every.batch_terms(ids, (1.0, 1.0, 0.0), train=False, rng=rng)
    torch.testing.assert_close(same_sums, full_sums, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name, classes", [("lr", 3), ("svm", 2)])
def test_training_runs_for_base_model(name, classes):
    X, y, _, _ = _iris(classes)
    model = make_model(name, X.shape[1], classes, 1.0)
    rng = np.random.default_rng(4)
    permutations = np.stack([rng.permutation(len(y))[:20] for _ in range(4)])
    fits = model.fit_prefixes(X, y, permutations)

    result = fit_surrogate(
        model,
        X,
        y,
        permutations,
        fits.theta,
        one_class=fits.one_class,
        config=_tiny_config(epochs=3),
    )

    assert len(result.history) == 3
    assert all(np.isfinite(record["train_kkt"]) for record in result.history)
    assert result.surrogate.predict_prefixes(X, y, permutations).shape == fits.theta.shape


def test_training_with_fixed_points(iris_lr):
    data = iris_lr
    model, X, y = data["model"], data["X"], data["y"]
    fixed = np.arange(57, N_TRAIN)
    rng = np.random.default_rng(5)
    permutations = np.stack([rng.permutation(57) for _ in range(4)])
    fits = model.fit_prefixes(X, y, permutations, fixed=fixed)

    result = fit_surrogate(
        model, X, y, permutations, fits.theta, one_class=fits.one_class, fixed=fixed,
        config=_tiny_config(epochs=2),
    )  # fmt: skip
    fast = result.surrogate.predict_prefixes(X, y, permutations, fixed=fixed)
    masks = prefix_masks(torch.from_numpy(permutations), len(y), torch.from_numpy(fixed))
    direct = result.surrogate.predict(X, y, masks.reshape(-1, len(y)).numpy())

    assert result.surrogate.metadata["fixed"] == fixed.tolist()
    np.testing.assert_allclose(fast.reshape(-1, model.n_params), direct, rtol=1e-5, atol=1e-5)


def test_training_ignores_outer_thread_count(iris_lr):
    data = iris_lr
    args = (data["model"], data["X"], data["y"], data["permutations"][:6], data["fits"].theta[:6])
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            result = fit_surrogate(*args, config=_tiny_config(hidden=64, epochs=2))
            weights.append(result.surrogate.network.state_dict())
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)

    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_utllearn_predicts_test_utility(iris_lr):
    data = iris_lr
    X, y, X_test, y_test = data["X"], data["y"], data["X_test"], data["y_test"]
    result = fit_surrogate(
        data["model"],
        X,
        y,
        data["permutations"][:8],
        data["fits"].theta[:8],
        method="utllearn",
        X_test=X_test,
        y_test=y_test,
        config=_tiny_config(epochs=2),
    )
    surrogate = result.surrogate
    masks = np.ones((3, len(y)), dtype=bool)
    masks[2] = y == 0

    utility = surrogate.predict_utility(X, y, masks, X_test, y_test)

    assert utility.shape == (3,)
    assert utility[2] == pytest.approx(np.log(2.0))
    with pytest.raises(ValueError, match="another test set"):
        surrogate.predict_utility(X, y, masks, X_test[:-1], y_test[:-1])


def test_utllearn_requires_test_set(iris_lr):
    data = iris_lr
    with pytest.raises(ValueError, match="X_test and y_test are required"):
        fit_surrogate(
            data["model"],
            data["X"],
            data["y"],
            data["permutations"][:4],
            data["fits"].theta[:4],
            method="utllearn",
            config=_tiny_config(epochs=1),
        )


class _Killed(RuntimeError):
    pass


# Drawn regularised prefixes must be drawn again identically after a resume.
@pytest.mark.parametrize("overrides", [{}, {"regulariser_prefixes": 7}])
def test_resumed_training_is_bitwise_identical(iris_lr, tmp_path, overrides):
    data = iris_lr
    args = (data["model"], data["X"], data["y"], data["permutations"][:10], data["fits"].theta[:10])
    config = _tiny_config(epochs=6, **overrides)

    uninterrupted = fit_surrogate(*args, config=config, checkpoint_path=tmp_path / "full.ckpt")

    def kill_after_third(epoch, record):
        if epoch == 3:
            raise _Killed

    ckpt = tmp_path / "killed.ckpt"
    with pytest.raises(_Killed):
        fit_surrogate(*args, config=config, checkpoint_path=ckpt, on_epoch_end=kill_after_third)
    assert ckpt.exists()
    resumed = fit_surrogate(*args, config=config, checkpoint_path=ckpt)

    assert not ckpt.exists()
    assert not (tmp_path / "full.ckpt").exists()
    expected = uninterrupted.surrogate.network.state_dict()
    for key, value in resumed.surrogate.network.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert resumed.best_epoch == uninterrupted.best_epoch
    assert [r["val_loss"] for r in resumed.history] == [
        r["val_loss"] for r in uninterrupted.history
    ]


def test_checkpoint_from_other_settings_is_ignored(iris_lr, tmp_path):
    data = iris_lr
    args = (data["model"], data["X"], data["y"], data["permutations"][:10], data["fits"].theta[:10])
    ckpt = tmp_path / "run.ckpt"

    def kill_after_first(epoch, record):
        raise _Killed

    with pytest.raises(_Killed):
        fit_surrogate(
            *args, config=_tiny_config(lr=1e-2), checkpoint_path=ckpt, on_epoch_end=kill_after_first
        )
    fresh = fit_surrogate(*args, config=_tiny_config())
    restarted = fit_surrogate(*args, config=_tiny_config(), checkpoint_path=ckpt)

    for key, value in restarted.surrogate.network.state_dict().items():
        assert torch.equal(value, fresh.surrogate.network.state_dict()[key]), key


def test_checkpoint_loads_with_weights_only(iris_lr, tmp_path):
    data = iris_lr
    ckpt = tmp_path / "run.ckpt"
    loaded = {}

    def inspect(epoch, record):
        loaded.update(torch.load(ckpt, weights_only=True))

    fit_surrogate(
        data["model"],
        data["X"],
        data["y"],
        data["permutations"][:6],
        data["fits"].theta[:6],
        config=_tiny_config(epochs=1),
        checkpoint_path=ckpt,
        on_epoch_end=inspect,
    )

    assert loaded["epoch"] == 1
    assert {"network", "optimizer", "best_network", "best_loss", "history"} <= set(loaded)
    assert all(isinstance(value, torch.Tensor) for value in loaded["network"].values())


# --------------------------------------------------------------------- files
@pytest.fixture
def workflow_files(iris_lr, tmp_path):
    """A data file and a samples file as the data and sampling rules would write them."""
    data = iris_lr
    X, y = data["X"], data["y"]
    dataset = Dataset(
        train=Split(X, y),
        test=Split(data["X_test"], data["y_test"]),
        pool=Split(data["X_test"][:3], data["y_test"][:3]),
        attrs={"dataset": "iris", "source": "bundled", "source_sha256": "", "n_classes": 2},
    )
    write_dataset(tmp_path / "iris.h5", dataset)
    fits = data["fits"]
    write_arrays(
        tmp_path / "lr.h5",
        {
            "permutations": data["permutations"][:10].astype(np.int32),
            "theta": fits.theta[:10],
            "converged": fits.converged[:10],
            "one_class": fits.one_class[:10],
            "kkt_residual": fits.kkt_residual[:10],
        },
        {"base_model": "lr", "lam": 1.0, "seed": 0, "param_layout": data["model"].param_layout},
    )
    return tmp_path


@pytest.mark.parametrize("method", ["modelpred", "paralearn", "utllearn"])
def test_train_surrogate_writes_loadable_files(workflow_files, method):
    out = workflow_files / "surrogates" / f"{method}.pt"
    sidecar = out.with_suffix(".json")
    config = {"hidden": 8, "layers": 2, "epochs": 2, "seed": 3}

    result = train_surrogate(
        workflow_files / "iris.h5", workflow_files / "lr.h5", method, config, out, sidecar
    )

    assert not checkpoint_path(out).exists()
    state = torch.load(out, weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    meta = json.loads(sidecar.read_text())
    for key in (
        "method",
        "dataset",
        "base_model",
        "n_features",
        "n_classes",
        "config",
        "best_epoch",
        "history",
    ):
        assert key in meta, key
    assert meta["method"] == method
    assert meta["dataset"] == "iris"
    assert meta["config"]["seed"] == 3
    assert len(meta["history"]) == 2
    loaded = load_surrogate(out)
    assert isinstance(loaded, Surrogate)
    assert loaded.method == method
    assert loaded.metadata["best_epoch"] == result.best_epoch


def test_loaded_surrogate_predicts_like_trained(workflow_files, iris_lr):
    out = workflow_files / "modelpred.pt"
    result = train_surrogate(
        workflow_files / "iris.h5",
        workflow_files / "lr.h5",
        "modelpred",
        {"hidden": 8, "layers": 2, "epochs": 2},
        out,
        out.with_suffix(".json"),
    )
    X, y = iris_lr["X"], iris_lr["y"]
    permutations = iris_lr["permutations"][30:]

    loaded = load_surrogate(out)

    np.testing.assert_array_equal(
        loaded.predict_prefixes(X, y, permutations),
        result.surrogate.predict_prefixes(X, y, permutations),
    )


def test_load_rejects_mismatched_shapes(workflow_files):
    out = workflow_files / "modelpred.pt"
    train_surrogate(
        workflow_files / "iris.h5",
        workflow_files / "lr.h5",
        "modelpred",
        {"hidden": 8, "layers": 2, "epochs": 1},
        out,
        out.with_suffix(".json"),
    )
    meta = json.loads(out.with_suffix(".json").read_text())
    meta["config"]["hidden"] = 16
    out.with_suffix(".json").write_text(json.dumps(meta))

    with pytest.raises(FormatError, match="modelpred.pt: tensors do not match") as error:
        load_surrogate(out)
    assert "delete both and retrain" in str(error.value)


def test_load_rejects_corrupt_file(workflow_files):
    out = workflow_files / "modelpred.pt"
    train_surrogate(
        workflow_files / "iris.h5",
        workflow_files / "lr.h5",
        "modelpred",
        {"hidden": 8, "layers": 2, "epochs": 1},
        out,
        out.with_suffix(".json"),
    )
    out.write_bytes(out.read_bytes()[:200])

    with pytest.raises(FormatError, match="modelpred.pt: not a readable torch state_dict") as error:
        load_surrogate(out)
    assert "retrain" in str(error.value)


def test_load_requires_sidecar(workflow_files):
    out = workflow_files / "modelpred.pt"
    train_surrogate(
        workflow_files / "iris.h5",
        workflow_files / "lr.h5",
        "modelpred",
        {"hidden": 8, "layers": 2, "epochs": 1},
        out,
        out.with_suffix(".json"),
    )
    out.with_suffix(".json").unlink()

    with pytest.raises(FileNotFoundError, match="modelpred.json: sidecar of surrogate"):
        load_surrogate(out)


def test_config_rejects_unknown_key():
    with pytest.raises(ValueError, match=r"unknown surrogate config keys \['hiden'\]"):
        SurrogateConfig.from_dict({"hiden": 64})


def test_config_rejects_out_of_range_value():
    with pytest.raises(ValueError, match="'val_fraction' must be in"):
        SurrogateConfig(val_fraction=1.0)
