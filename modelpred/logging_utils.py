"""Logging set-up shared by the workflow's scripts and the command-line tool."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO


def log_to_file(path: str | os.PathLike | None, level: int = logging.INFO) -> TextIO:
    """Send the ``logging`` records and ``sys.stderr`` of this process to ``path``.

    Snakemake rules pass their ``log:`` file here, so warnings and tqdm
    progress bars end up in the rule's log. Returns the open stream, which a
    progress bar can write to; with ``path`` None the stream is stderr.
    """
    stream: TextIO
    if path is None:
        stream = sys.stderr
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        sys.stderr = stream
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
        force=True,
    )
    logging.captureWarnings(True)
    return stream
