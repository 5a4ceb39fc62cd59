"""Snakemake entry point of the data_{dataset} rules: build one data/{dataset}.h5.

mnist-based datasets get ``input.features`` (features/mnist.h5); the others
have no input. ``params.cache_dir`` is where ``url`` sources are downloaded.
"""

import logging

from modelpred import io
from modelpred.data import build_dataset
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
logger = logging.getLogger("modelpred.scripts.build_data")
params = snakemake.params  # noqa: F821

# The rule lists the features file in a list that is empty for datasets
# that do not need it.
features = snakemake.input.get("features")  # noqa: F821
if features is not None and not isinstance(features, str):
    features = features[0] if len(features) else None

logger.info("building dataset %s", params.name)
dataset = build_dataset(
    params.name, params.spec, params.seed, features_path=features, cache_dir=params.get("cache_dir")
)
io.write_dataset(snakemake.output[0], dataset, io.job_provenance(snakemake))  # noqa: F821
logger.info(
    "wrote %s: %d train, %d pool, %d test points, d = %d, %d classes",
    snakemake.output[0],  # noqa: F821
    len(dataset.train),
    len(dataset.pool),
    len(dataset.test),
    dataset.n_features,
    dataset.n_classes,
)
