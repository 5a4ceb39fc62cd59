"""Resolve the ``source`` entry of a dataset's config to a local file or folder.

A source is one of three kinds, named by its ``kind`` key:

``bundled``
    A file shipped inside an installed package. The dataset's builder locates
    that file, so :func:`resolve_source` returns no path for it.
``path``
    A local file or folder named by ``path``.
``url``
    A download from ``url`` whose bytes must have the sha256 digest
    ``sha256``. The file is saved in a cache folder the caller names, under
    a temporary name that is renamed only after the digest matches, so a
    failed or tampered download leaves no file behind. A ``.zip`` or
    ``.tar[.gz|.bz2|.xz]`` download is extracted into a folder beside it and
    that folder is the resolved path.

Every error names the config key to set, in the dotted form
``datasets.<name>.source.<key>`` that ``config/schema.yaml`` uses.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from modelpred.io import atomic_path, sha256_file

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("bundled", "path", "url")
"""The values ``source.kind`` may take."""

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class SourceError(ValueError):
    """A dataset's source is not configured, not found or not usable."""


class ChecksumError(SourceError):
    """A downloaded file's sha256 differs from the configured one."""


@dataclass(frozen=True)
class ResolvedSource:
    """A dataset source made local.

    Attributes
    ----------
    kind : str
        ``bundled``, ``path`` or ``url``.
    path : Path or None
        The local file or folder; None for ``bundled``.
    description : str
        The path or URL, for the ``source`` attribute of the data file.
    """

    kind: str
    path: Path | None
    description: str


def source_key(dataset: str, key: str) -> str:
    """Return the dotted config key ``datasets.<dataset>.source.<key>``."""
    return f"datasets.{dataset}.source.{key}"


def resolve_source(
    dataset: str,
    source: Mapping[str, Any] | None,
    *,
    kinds: Collection[str] = SOURCE_KINDS,
    expect: str = "the dataset's file",
    cache_dir: str | os.PathLike | None = None,
) -> ResolvedSource:
    """Make the source of ``dataset`` local: check a path or download a URL.

    Parameters
    ----------
    dataset : str
        The dataset's name in the config, used to name keys in errors.
    source : mapping or None
        The dataset's ``source`` entry: ``{kind: bundled}``,
        ``{kind: path, path: ...}`` or ``{kind: url, url: ..., sha256: ...}``.
        None means ``{kind: bundled}``.
    kinds : collection of str
        The kinds this dataset's builder can read.
    expect : str
        What ``path`` must name, for error messages, e.g. "the folder holding
        adult.data and adult.test".
    cache_dir : path-like, optional
        Folder that ``url`` sources are downloaded to; required for them.

    Returns
    -------
    ResolvedSource

    Raises
    ------
    SourceError
        If the kind is unknown or not one of ``kinds``, ``path`` is unset or
        does not exist, or ``url``, ``sha256`` or ``cache_dir`` is missing.
    ChecksumError
        If the downloaded bytes do not have the configured sha256.
    """
    source = dict(source or {"kind": "bundled"})
    kind = source.get("kind", "bundled")
    if kind not in SOURCE_KINDS:
        raise SourceError(
            f"{source_key(dataset, 'kind')} is {kind!r}, which is not a source kind; "
            f"set it to one of {', '.join(SOURCE_KINDS)}"
        )
    if kind not in kinds:
        hint = f"set {source_key(dataset, 'kind')} to {' or '.join(kinds)}"
        if "path" in kinds:
            hint += f" and {source_key(dataset, 'path')} to {expect}"
        raise SourceError(f"dataset '{dataset}' cannot be read from a {kind!r} source; {hint}")

    if kind == "bundled":
        return ResolvedSource("bundled", None, "bundled")
    if kind == "path":
        return ResolvedSource(
            "path", _check_path(dataset, source.get("path"), expect), str(source.get("path"))
        )
    return _resolve_url(dataset, source, cache_dir)


def _check_path(dataset: str, value: Any, expect: str) -> Path:
    key = source_key(dataset, "path")
    if value is None or str(value).strip() == "":
        raise SourceError(
            f"dataset '{dataset}' needs a local copy of its data: set {key} to {expect}"
        )
    path = Path(os.path.expanduser(str(value)))
    if not path.exists():
        raise SourceError(f"{key} is '{value}', which does not exist; set {key} to {expect}")
    return path.resolve()


def _resolve_url(
    dataset: str, source: Mapping[str, Any], cache_dir: str | os.PathLike | None
) -> ResolvedSource:
    url = source.get("url")
    if not url:
        raise SourceError(
            f"dataset '{dataset}' has source kind 'url' but no URL; "
            f"set {source_key(dataset, 'url')}"
        )
    sha256 = source.get("sha256")
    if not sha256:
        raise SourceError(
            f"dataset '{dataset}' downloads {url} but no checksum is configured; "
            f"set {source_key(dataset, 'sha256')} to the file's sha256 (64 hex digits)"
        )
    if cache_dir is None:
        raise SourceError(
            f"dataset '{dataset}' downloads {url} but no cache folder was given; "
            "set cache_dir in the config (or pass cache_dir=) to the folder downloads are kept in"
        )
    filename = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
    target = Path(cache_dir) / dataset / filename
    download_file(url, target, sha256, key=source_key(dataset, "sha256"))
    if filename.endswith(_ARCHIVE_SUFFIXES):
        return ResolvedSource("url", extract_archive(target), url)
    return ResolvedSource("url", target, url)


def download_file(
    url: str, target: str | os.PathLike, sha256: str, *, key: str = "sha256", timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``target`` atomically and check its sha256.

    A file already at ``target`` with the right digest is kept without a
    download. One with another digest is removed and downloaded again.

    Parameters
    ----------
    url : str
        Any URL that :func:`urllib.request.urlopen` opens (``https``,
        ``http``, ``file``).
    target : path-like
        Where the file is stored.
    sha256 : str
        The expected hex digest.
    key : str
        The config key holding ``sha256``, named in the error.
    timeout : float
        Seconds to wait for the server to respond.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    ChecksumError
        If the downloaded bytes have another digest. Nothing is left at
        ``target`` or under a temporary name.
    SourceError
        If the download fails.
    """
    target = Path(target)
    expected = sha256.strip().lower()
    if target.exists():
        actual = sha256_file(target)
        if actual == expected:
            logger.info("using cached %s (sha256 %s)", target, actual)
            return target
        logger.warning(
            "cached %s has sha256 %s, not %s; downloading it again", target, actual, expected
        )
        target.unlink()

    logger.info("downloading %s to %s", url, target)
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout) as response,
                open(tmp, "wb") as handle,
            ):
                while block := response.read(1 << 20):
                    digest.update(block)
                    handle.write(block)
        except OSError as error:
            raise SourceError(
                f"download of {url} failed: {error}; check the URL and the network"
            ) from error
        actual = digest.hexdigest()
        # Raising inside atomic_path removes the temporary file, so a download
        # with the wrong bytes never appears at the target.
        if actual != expected:
            raise ChecksumError(
                f"download of {url} has sha256 {actual} but {key} expects {expected}; "
                "check that the URL names the intended file, "
                f"or set {key} to the digest of the file you trust"
            )
    logger.info("downloaded %s (sha256 %s)", target, actual)
    return target


def extract_archive(archive: str | os.PathLike) -> Path:
    """Extract a zip or tar archive into a folder beside it and return that folder.

    The folder is named after the archive without its suffix. It is filled
    under a temporary name and renamed when complete, so an existing folder
    is a finished extraction and is reused. Members whose paths would leave
    the folder (absolute paths, ``..``, links to outside) are rejected.
    """
    archive = Path(archive)
    stem = archive.name
    for suffix in sorted(_ARCHIVE_SUFFIXES, key=len, reverse=True):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    folder = archive.parent / stem
    if folder.is_dir():
        return folder

    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=archive.parent))
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as handle:
                for member in handle.namelist():
                    _check_member_name(archive, member)
                handle.extractall(tmp)
        else:
            with tarfile.open(archive) as handle:
                # NOTE: the "data" filter (Python 3.11.4 and later) rejects
                # absolute paths, ".." and links that point outside the folder.
                handle.extractall(tmp, filter="data")
        os.replace(tmp, folder)
    except (zipfile.BadZipFile, tarfile.TarError) as error:
        raise SourceError(
            f"{archive}: cannot extract the archive ({error}); delete it and run again"
        ) from error
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def _check_member_name(archive: Path, member: str) -> None:
    parts = PurePosixPath(member.replace("\\", "/")).parts
    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise SourceError(
            f"{archive}: member '{member}' would be written outside the extraction folder"
        )


def find_file(folder: Path, filename: str, dataset: str, expect: str) -> Path:
    """Return ``folder/filename``, or the one file of that name below ``folder``.

    Downloaded archives often wrap their files in a subfolder, so the search
    goes down the tree when the file is not at the top.

    Raises
    ------
    SourceError
        If no file or more than one file of that name is found.
    """
    direct = folder / filename
    if direct.is_file():
        return direct
    matches = sorted(path for path in folder.rglob(filename) if path.is_file())
    if len(matches) == 1:
        return matches[0]
    key = source_key(dataset, "path")
    if not matches:
        raise SourceError(f"{filename} not found in {folder}; set {key} to {expect}")
    raise SourceError(
        f"{len(matches)} files named {filename} in {folder} ({', '.join(map(str, matches[:3]))}); "
        f"set {key} to the folder of the one to use"
    )
