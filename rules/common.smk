# Config validation, wildcard constraints and input helpers shared by every
# rules file. Parsing stays cheap: modelpred.config imports no numerical code.

from modelpred.config import (
    builder_of,
    enabled_datasets,
    load_config,
    n_permutations_of,
)

load_config(config)

R = config["results_dir"]
DATASETS = enabled_datasets(config)
SHARDS = config["sampling"]["shards"]


wildcard_constraints:
    dataset="|".join(DATASETS) or "(?!)",
    model="lr|svm|nn",
    shard=r"\d+",


def dataset_spec(name):
    """Return the config entry of dataset `name`."""
    return config["datasets"][name]


def models_of(name):
    """Return the base models enabled for dataset `name`."""
    return dataset_spec(name)["models"]


def uses_mnist_features(name):
    """Return whether dataset `name` is built from the CNN features of bundled MNIST digits."""
    return builder_of(name, dataset_spec(name)) == "mnist"


def get_shards(wildcards):
    """Return the shard files that the merged samples of one dataset and model need."""
    return expand(
        f"{R}/samples/{wildcards.dataset}/{wildcards.model}/shard-{{shard}}.h5",
        shard=range(SHARDS),
    )


def sample_targets():
    """Return the merged samples of every enabled dataset and base model."""
    return [f"{R}/samples/{name}/{model}.h5" for name in DATASETS for model in models_of(name)]


def all_targets():
    """Return every final output the config enables."""
    return sample_targets()
