"""HDF5 layouts, atomic writes and format checks shared by every stage.

Every file the workflow writes goes to a temporary name beside its target and
is renamed into place only when complete, so a killed job never leaves a file
that a later job would read as finished. Every HDF5 file carries a
``format_version`` root attribute; readers reject other versions with a
message that names the file and the fix (delete it and rerun its rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT_VERSION = 1
"""Version of the HDF5 layouts written by this package."""

SPLITS = ("train", "test", "pool")


class FormatError(ValueError):
    """An input file is corrupt, foreign or of another ``format_version``."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and rename it to ``path`` on success.

    The temporary file is removed when the body raises, so no partial file is
    left under either name.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file readable by its owner only; outputs get the
    # permissions an ordinary file would get under the current umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Return the versions of the packages that determine numerical results."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in (
        "modelpred",
        "numpy",
        "scipy",
        "torch",
        "scikit-learn",
        "liblinear-official",
        "h5py",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance_attrs(
    config: Mapping[str, Any] | None = None, inputs: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return root attributes that trace a file to its config, packages and inputs.

    ``inputs`` maps a role (e.g. ``"data"``) to a path whose sha256 is recorded.
    """
    attrs = {
        "format_version": FORMAT_VERSION,
        "package_versions": json.dumps(package_versions(), sort_keys=True),
    }
    if config is not None:
        attrs["config"] = json.dumps(config, sort_keys=True, default=_json_default)
    if inputs:
        attrs["input_sha256"] = json.dumps(
            {role: sha256_file(p) for role, p in inputs.items()}, sort_keys=True
        )
    return attrs


JOB_PROVENANCE_KEYS = ("rule", "wildcards", "params", "seeds", "input_paths", "input_sha256")
"""Root attributes that describe one workflow job rather than the workflow as a whole."""


def job_provenance(job: Any, extra_inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return root attributes that trace a workflow job's output to its settings and inputs.

    ``job`` is Snakemake's ``snakemake`` object in a script, or anything with
    the attributes ``rule``, ``input``, ``params``, ``wildcards`` and
    ``config``. The result contains the attributes of
    :func:`provenance_attrs` and further ones:

    - ``rule``: the rule's name, a plain string.
    - ``config``: the whole workflow config as the job received it (JSON).
    - ``params``, ``wildcards``: the job's named params and wildcards
      (JSON). A param that JSON cannot represent is stored as its ``str``.
    - ``seeds``: ``{"config": config["seed"], "params": params["seed"]}``
      (JSON), each key present only where that seed is set.
    - ``input_paths``: role to path of every input (JSON).
    - ``input_sha256``: role to sha256 of every input that is a file
      (JSON). Directories are recorded in ``input_paths`` only, because
      hashing a folder of images costs more than the job itself.

    A named input is its own role. A named list of files gets one role per
    file, ``name[i]``. An unnamed input gets ``input[i]``, where ``i`` is its
    position in the full input list. ``extra_inputs`` maps further roles to
    files the job reads without declaring them.
    """
    inputs = dict(_input_roles(job.input))
    inputs.update({role: str(path) for role, path in (extra_inputs or {}).items()})
    files = {role: path for role, path in inputs.items() if os.path.isfile(path)}
    config = _json_safe(dict(job.config or {}))
    params = _json_safe(_named_values(job.params))

    seeds = {}
    if config.get("seed") is not None:
        seeds["config"] = config["seed"]
    if params.get("seed") is not None:
        seeds["params"] = params["seed"]

    attrs = provenance_attrs(config=config, inputs=files)
    # provenance_attrs leaves the checksums out when there are no files, but
    # every job's output carries the attribute, so readers need not special-case it.
    attrs.setdefault("input_sha256", json.dumps({}))
    attrs.update(
        {
            "rule": str(job.rule),
            "wildcards": json.dumps(_json_safe(_named_values(job.wildcards)), sort_keys=True),
            "params": json.dumps(params, sort_keys=True),
            "seeds": json.dumps(seeds, sort_keys=True),
            "input_paths": json.dumps(inputs, sort_keys=True),
        }
    )
    return attrs


JSON_PROVENANCE_KEYS = (
    "config",
    "package_versions",
    "params",
    "wildcards",
    "seeds",
    "input_paths",
    "input_sha256",
)
"""Provenance attributes whose values are JSON text."""


def decode_provenance(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the provenance among root attributes, with JSON values decoded.

    ``attrs`` are root attributes as h5py or :func:`read_arrays` returns them.
    Keys that ``attrs`` lacks are left out.
    """
    decoded: dict[str, Any] = {}
    for key in ("format_version", "rule", *JSON_PROVENANCE_KEYS):
        if key not in attrs:
            continue
        value = _decode(attrs[key])
        if key in JSON_PROVENANCE_KEYS:
            value = json.loads(value)
        elif key == "format_version":
            value = int(value)
        decoded[key] = value
    return decoded


def _named_values(container: Any) -> dict[str, Any]:
    """Return the named entries of a Snakemake Namedlist, a mapping or ``None`` as a dict."""
    if container is None:
        return {}
    if isinstance(container, Mapping):
        return dict(container)
    if hasattr(container, "items"):
        return dict(container.items())
    return dict(vars(container))


def _input_roles(inputs: Any) -> Iterator[tuple[str, str]]:
    """Yield a (role, path) pair for every file in a job's inputs."""
    if inputs is None:
        return
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    named = _named_values(inputs) if isinstance(inputs, Mapping) or hasattr(inputs, "items") else {}
    remaining: dict[str, int] = {}
    for name, value in named.items():
        if isinstance(value, str | os.PathLike):
            yield name, str(value)
            remaining[str(value)] = remaining.get(str(value), 0) + 1
        else:
            for i, path in enumerate(value):
                yield f"{name}[{i}]", str(path)
                remaining[str(path)] = remaining.get(str(path), 0) + 1
    if isinstance(inputs, Mapping):
        return
    # A Namedlist also lists its named files in order; whatever the names do
    # not account for was given without a name.
    for i, path in enumerate(map(str, inputs)):
        if remaining.get(path, 0) > 0:
            remaining[path] -= 1
        else:
            yield f"input[{i}]", path


def _json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON types, with ``str`` for anything JSON cannot represent."""

    def fallback(item: Any) -> Any:
        try:
            return _json_default(item)
        except TypeError:
            return str(item)

    return json.loads(json.dumps(value, default=fallback))


def open_checked(path: str | os.PathLike, required: tuple[str, ...] = ()) -> h5py.File:
    """Open an HDF5 file for reading and check its ``format_version`` and members.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FormatError
        If the file is not HDF5, lacks ``format_version``, has another
        version, or lacks one of the ``required`` members.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise FormatError(
            f"{path}: not a readable HDF5 file ({error}); "
            "delete it and rerun the rule that writes it"
        ) from error
    version = handle.attrs.get("format_version")
    if version is None:
        handle.close()
        raise FormatError(
            f"{path}: no 'format_version' attribute, so it was not written by modelpred; "
            "delete it and rerun the rule that writes it"
        )
    if int(version) != FORMAT_VERSION:
        handle.close()
        raise FormatError(
            f"{path}: format_version {int(version)} but this modelpred reads "
            f"version {FORMAT_VERSION}; "
            "delete it and rerun the rule that writes it"
        )
    for member in required:
        if member not in handle:
            handle.close()
            raise FormatError(
                f"{path}: missing '{member}'; delete it and rerun the rule that writes it"
            )
    return handle


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Split:
    """Features ``X`` (n, d) float64 and class indices ``y`` (n,) int64.

    ``index`` (n,) int64 is optional: the row of the source each point was
    drawn from (for mnist, the row of ``features/mnist.h5``), so that figures
    can show a point's raw record or image. Readers must not require it.
    """

    X: np.ndarray
    y: np.ndarray
    index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    """A dataset as stored in ``data/{dataset}.h5``.

    ``attrs`` contains the root attributes (``dataset``, ``source``,
    ``source_sha256``, ``n_classes`` and any extra ones such as
    ``subgroup``, the train indices that a subgroup dataset permutes).
    """

    train: Split
    test: Split
    pool: Split
    attrs: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return int(self.attrs["n_classes"])

    @property
    def n_features(self) -> int:
        return int(self.train.X.shape[1])

    @property
    def name(self) -> str:
        return str(self.attrs.get("dataset", ""))

    def holdout(self) -> np.ndarray:
        """Return the train indices left out of permutation sampling (empty for most datasets)."""
        return np.asarray(self.attrs.get("holdout", []), dtype=np.int64)

    def subgroup(self) -> np.ndarray | None:
        """Return the train indices that permutations run over, or None for all of them."""
        if "subgroup" in self.attrs:
            return np.asarray(self.attrs["subgroup"], dtype=np.int64)
        return None


def validate_split(name: str, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    """Raise ValueError if a split has non-finite features or out-of-range labels."""
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(
            f"split '{name}': X must be (n, d) and y (n,), got {X.shape} and {y.shape}"
        )
    if not np.all(np.isfinite(X)):
        rows = np.unique(np.nonzero(~np.isfinite(X))[0])
        raise ValueError(
            f"split '{name}': {len(rows)} rows have NaN or infinite features "
            f"(first rows: {rows[:5].tolist()}); "
            "clean or drop them before building the dataset"
        )
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"split '{name}': labels must be class indices 0..{n_classes - 1}, "
            f"got values from {y.min()} to {y.max()}"
        )


def write_dataset(
    path: str | os.PathLike, dataset: Dataset, extra_attrs: Mapping[str, Any] | None = None
) -> None:
    """Write ``dataset`` to ``path`` atomically in the ``data/{dataset}.h5`` layout."""
    for split in SPLITS:
        part = getattr(dataset, split)
        validate_split(split, part.X, part.y, dataset.n_classes)
        if part.index is not None and np.shape(part.index) != np.shape(part.y):
            raise ValueError(
                f"split '{split}': index must have one entry per point, "
                f"got shape {np.shape(part.index)} for {len(part.y)} points"
            )
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for split in SPLITS:
            part = getattr(dataset, split)
            group = handle.create_group(split)
            group.create_dataset("X", data=np.asarray(part.X, dtype=np.float64))
            group.create_dataset("y", data=np.asarray(part.y, dtype=np.int64))
            if part.index is not None:
                group.create_dataset("index", data=np.asarray(part.index, dtype=np.int64))
        for key, value in {**dataset.attrs, **(extra_attrs or {})}.items():
            handle.attrs[key] = value
        handle.attrs["format_version"] = FORMAT_VERSION


def read_dataset(path: str | os.PathLike) -> Dataset:
    """Read a ``data/{dataset}.h5`` file written by :func:`write_dataset`."""
    required = tuple(f"{split}/{member}" for split in SPLITS for member in ("X", "y"))
    with open_checked(path, required) as handle:
        splits = {}
        for split in SPLITS:
            index = handle[f"{split}/index"][...] if f"{split}/index" in handle else None
            splits[split] = Split(handle[f"{split}/X"][...], handle[f"{split}/y"][...], index)
        attrs = {key: _decode(value) for key, value in handle.attrs.items()}
    if "n_classes" not in attrs:
        raise FormatError(
            f"{path}: missing root attribute 'n_classes'; delete it and rerun its data rule"
        )
    return Dataset(attrs=attrs, **splits)


def read_arrays(
    path: str | os.PathLike, names: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read the named datasets and the root attributes of a checked HDF5 file."""
    with open_checked(path, names) as handle:
        arrays = {name: handle[name][...] for name in names}
        attrs = {key: _decode(value) for key, value in handle.attrs.items()}
    return arrays, attrs


def write_arrays(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
) -> None:
    """Write named arrays (``/`` in a name makes groups) and root attributes atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=value)
        for key, value in attrs.items():
            handle.attrs[key] = value
        handle.attrs["format_version"] = FORMAT_VERSION
