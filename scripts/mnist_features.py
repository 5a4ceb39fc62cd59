"""Snakemake entry point of rule mnist_features: train the feature CNN, write features/mnist.h5."""

from modelpred import io
from modelpred.data.mnist_features import write_mnist_features
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
options = snakemake.params.options  # noqa: F821
write_mnist_features(
    snakemake.output[0],  # noqa: F821
    reserved=int(options.get("reserved", 1500)),
    epochs=int(options.get("epochs", 8)),
    seed=int(snakemake.params.seed),  # noqa: F821
    batch_size=int(options.get("batch_size", 64)),
    lr=float(options.get("lr", 1e-3)),
    extra_attrs=io.job_provenance(snakemake),  # noqa: F821
    source_dir=snakemake.params.source_dir,  # noqa: F821
)
