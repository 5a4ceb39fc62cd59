"""Snakemake entry point of rule image_features: frozen ResNet-18 features of an image dataset.

Input: ``backbone`` (a state_dict). Params: ``name`` (the features file
stem), ``dataset`` and ``spec`` (the config entry the images come from),
``builder``, ``backbone_kind``, ``image_size``, ``extract`` (the
``images.extract`` block), ``seed`` and ``cache_dir``. Output:
``features/{name}.h5``.
"""

from modelpred import io
from modelpred.data.backbone import backbone_attrs, load_backbone, write_image_features
from modelpred.data.images import read_image_source
from modelpred.logging_utils import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
extract = dict(params.extract)

backbone, metadata = load_backbone(snakemake.input.backbone)  # noqa: F821
image_set, display, source, source_sha256 = read_image_source(
    params.dataset, params.builder, params.spec, params.image_size, params.seed, params.cache_dir
)
write_image_features(
    snakemake.output[0],  # noqa: F821
    params.name,
    image_set,
    display,
    source,
    source_sha256,
    backbone,
    backbone_attrs(backbone, metadata, params.backbone_kind),
    batch_size=extract["batch_size"],
    device=extract["device"],
    threads=extract["threads"],
    config={"dataset": params.dataset, "image_size": params.image_size, "extract": extract},
    extra_attrs=io.job_provenance(snakemake),  # noqa: F821
)
