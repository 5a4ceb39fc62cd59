"""The data stage: dataset sources, builders and the MNIST feature extractor.

:func:`build_dataset` turns one entry of the config's ``datasets:`` mapping
into a :class:`modelpred.io.Dataset`, ready for
:func:`modelpred.io.write_dataset`. The MNIST feature extractor lives in
:mod:`modelpred.data.mnist_features`, which is not imported here because it
needs torch.
"""

from modelpred.data.builders import BUILDERS, build_dataset
from modelpred.data.sources import (
    ChecksumError,
    ResolvedSource,
    SourceError,
    download_file,
    resolve_source,
)

__all__ = [
    "BUILDERS",
    "ChecksumError",
    "ResolvedSource",
    "SourceError",
    "build_dataset",
    "download_file",
    "resolve_source",
]
