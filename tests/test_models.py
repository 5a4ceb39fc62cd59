"""Base models against scikit-learn fits and autograd, on real spam and MNIST features."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.svm import LinearSVC

from modelpred.models import LinearSVM, LogisticRegression, make_model


def sklearn_lr_theta(X, y, lam):
    fit = SkLogisticRegression(C=1.0 / lam, tol=1e-12, max_iter=100_000).fit(X, y)
    return np.hstack([fit.coef_, fit.intercept_[:, None]]).ravel()


def sklearn_svm_theta(X, y, lam):
    fit = LinearSVC(loss="squared_hinge", dual=False, C=1.0 / lam, tol=1e-12, max_iter=100_000).fit(
        X, y
    )
    return np.r_[fit.coef_[0], fit.intercept_]


def relative_error(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("size", [40, 150, 300])
def test_lr_binary_matches_sklearn_on_spam(spam, size):
    rng = np.random.default_rng(size)
    rows = rng.choice(len(spam.train), size, replace=False)
    X, y = spam.train.X[rows], spam.train.y[rows]
    theta = LogisticRegression(spam.n_features, 2).fit(X, y)
    assert relative_error(theta, sklearn_lr_theta(X, y, 1.0)) < 1e-6


def test_lr_multinomial_matches_sklearn_on_mnist(mnist):
    X, y = mnist.train.X, mnist.train.y
    theta = LogisticRegression(mnist.n_features, 10).fit(X, y)
    reference = sklearn_lr_theta(X, y, 1.0)
    assert relative_error(theta, reference) < 1e-6
    intercepts = theta.reshape(10, -1)[:, -1]
    assert abs(intercepts.sum()) < 1e-10


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_lr_gradient_vanishes_at_solution(spam, lam):
    X, y = spam.train.X[:120], spam.train.y[:120]
    model = LogisticRegression(spam.n_features, 2, lam=lam)
    theta = model.fit(X, y)
    grad = model.numpy_eval("gradient", theta, X, y, np.ones(len(y)))
    assert np.linalg.norm(grad) < 1e-5


def test_lr_multinomial_gradient_vanishes(mnist):
    X, y = mnist.train.X, mnist.train.y
    model = LogisticRegression(mnist.n_features, 10)
    grad = model.numpy_eval("gradient", model.fit(X, y), X, y, np.ones(len(y)))
    assert np.linalg.norm(grad) < 1e-5


@pytest.mark.parametrize("first_class", [0, 1])
def test_svm_matches_linearsvc_whatever_first_label(spam, first_class):
    X, y = spam.train.X[:200], spam.train.y[:200]
    first = np.flatnonzero(y == first_class)[0]
    order = np.r_[first, np.delete(np.arange(len(y)), first)]
    theta = LinearSVM(spam.n_features, 2).fit(X[order], y[order])
    assert y[order][0] == first_class
    assert relative_error(theta, sklearn_svm_theta(X[order], y[order], 1.0)) < 1e-4


def test_svm_prefix_fits_match_independent_fits(spam):
    X, y = spam.train.X[:80], spam.train.y[:80]
    model = LinearSVM(spam.n_features, 2)
    perms = np.stack([np.random.default_rng(s).permutation(80) for s in range(2)])
    fits = model.fit_prefixes(X, y, perms)
    for b in range(2):
        for i in (10, 40, 79):
            if fits.one_class[b, i]:
                continue
            rows = perms[b, : i + 1]
            assert relative_error(fits.theta[b, i], sklearn_svm_theta(X[rows], y[rows], 1.0)) < 1e-4


@pytest.mark.parametrize("name,classes", [("lr", 2), ("lr", 4), ("svm", 2)])
def test_gradient_equals_autograd(name, classes):
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(size=(30, 5)))
    y = torch.as_tensor(rng.integers(0, classes, 30))
    model = make_model(name, 5, classes)
    theta = torch.tensor(rng.normal(size=(3, model.n_params)), requires_grad=True)
    mask = torch.as_tensor(rng.integers(0, 2, (3, 30)).astype(float))
    model.objective(theta, X, y, mask).sum().backward()
    closed_form = model.gradient(theta.detach(), X, y, mask)
    torch.testing.assert_close(closed_form, theta.grad, rtol=1e-10, atol=1e-12)


def test_one_class_subset_gives_zero_theta(spam):
    X, y = spam.train.X, spam.train.y
    rows = np.flatnonzero(y == 1)[:10]
    for model in (LogisticRegression(spam.n_features, 2), LinearSVM(spam.n_features, 2)):
        assert np.all(model.fit(X[rows], y[rows]) == 0)


def test_prefix_fits_mark_one_class_prefixes(spam):
    X, y = spam.train.X[:50], spam.train.y[:50]
    order = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1), np.flatnonzero(y == 0)[3:]]
    fits = LogisticRegression(spam.n_features, 2).fit_prefixes(X, y, order[None])
    assert fits.one_class[0, :3].all()
    assert not fits.one_class[0, 3:].any()
    assert np.all(fits.theta[0, :3] == 0)
    assert fits.converged.all()


def test_lr_prefix_fits_match_independent_fits(spam):
    X, y = spam.train.X[:100], spam.train.y[:100]
    model = LogisticRegression(spam.n_features, 2)
    perms = np.stack([np.random.default_rng(s).permutation(100) for s in range(3)])
    fits = model.fit_prefixes(X, y, perms)
    for b in range(3):
        for i in (5, 50, 99):
            if not fits.one_class[b, i]:
                rows = perms[b, : i + 1]
                assert (
                    relative_error(fits.theta[b, i], sklearn_lr_theta(X[rows], y[rows], 1.0)) < 1e-6
                )
    assert fits.kkt_residual.max() < 1e-5


def test_svm_rejects_more_than_two_classes():
    with pytest.raises(ValueError, match="at most 2 classes"):
        LinearSVM(4, 3)


def test_fit_rejects_bad_input():
    model = LogisticRegression(3, 2)
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(np.where(X > 0, np.nan, X), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="class indices 0..1"):
        model.fit(X, np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        model.fit(np.ones((4, 2)), np.array([0, 1, 0, 1]))
