"""Label-noise variants: same splits as the base dataset, flipped labels, held-out points."""

import numpy as np
import pytest

from modelpred import sampling
from modelpred.config import n_permutations_of, n_permuted
from modelpred.data import build_dataset

SPEC = {
    "source": {"kind": "bundled"},
    "n_train": 300,
    "n_pool": 150,
    "n_test": 500,
    "models": ["lr"],
}


def test_fraction_flips_that_many_labels(spam):
    noisy = build_dataset("spam-flip10", {**SPEC, "label_noise": {"fraction": 0.1}}, seed=0)
    np.testing.assert_array_equal(noisy.train.X, spam.train.X)
    changed = np.flatnonzero(noisy.train.y != spam.train.y)
    assert len(changed) == 30
    np.testing.assert_array_equal(changed, noisy.attrs["flipped"])
    np.testing.assert_array_equal(noisy.test.y, spam.test.y)


def test_multiclass_flip_changes_every_chosen_label(mnist, mnist_features_path):
    spec = {**SPEC, "label_noise": {"first": 20, "holdout": True}}
    noisy = build_dataset("mnist-flip20", spec, seed=0, features_path=str(mnist_features_path))
    assert np.all(noisy.train.y[:20] != mnist.train.y[:20])
    np.testing.assert_array_equal(noisy.train.y[20:], mnist.train.y[20:])
    items, fixed = sampling.permuted_items(noisy)
    np.testing.assert_array_equal(items, np.arange(20, 300))
    assert len(fixed) == 0


def test_label_noise_needs_one_rule():
    with pytest.raises(ValueError, match="exactly one of 'fraction' and 'first'"):
        build_dataset("spam-x", {**SPEC, "label_noise": {"fraction": 0.1, "first": 3}}, seed=0)


@pytest.mark.parametrize(
    "noise", [{"first": 20, "holdout": True}, {"fraction": 0.1, "holdout": True}]
)
def test_holdout_points_not_permuted(spam, noise):
    spec = {**SPEC, "label_noise": noise}
    noisy = build_dataset("spam-flip", spec, seed=0)
    items, _ = sampling.permuted_items(noisy)
    assert n_permuted(spec) == len(items)
    config = {"sampling": {"subsets": 15000}, "datasets": {"spam-flip": spec}}
    assert n_permutations_of(config, "spam-flip") == -(-15000 // len(items))


def test_flipped_without_holdout_permuted():
    assert n_permuted({**SPEC, "label_noise": {"fraction": 0.1}}) == 300
