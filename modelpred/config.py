"""Workflow configuration: validation against ``config/schema.yaml`` and derived values.

This module imports no numerical library, because Snakemake imports it every
time it parses the workflow (once per job on a cluster).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema; the message names the key."""


def _key_path(error: jsonschema.ValidationError) -> str:
    # For an unknown key the path names its parent and the message names the key.
    parts = [str(part) for part in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def validate_config(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Raise ConfigError listing every key of ``config`` that breaks the schema.

    Each line names the key by its dotted path (``datasets.iris.n_train``),
    what was found and what is allowed.
    """
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  {_key_path(error)}: {error.message}" for error in errors]
        raise ConfigError(
            "invalid configuration (see config/schema.yaml for every key):\n" + "\n".join(lines)
        )


def fill_defaults(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Fill the defaults of the schema into ``config`` in place and return it."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    defs = schema.get("$defs", {})

    def fill(node: dict, sub: Mapping) -> None:
        if "$ref" in sub:
            sub = defs[sub["$ref"].split("/")[-1]]
        for key, prop in sub.get("properties", {}).items():
            if key not in node and "default" in prop:
                node[key] = _copy(prop["default"])
            if isinstance(node.get(key), dict):
                fill(node[key], prop)
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in node.items():
                if key not in sub.get("properties", {}) and isinstance(value, dict):
                    fill(value, extra)

    fill(config, schema)
    return config


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


def _scalar_from_string(value: str, types: list[str]) -> Any:
    """Return ``value`` converted to the first schema type it parses as, else unchanged."""
    lowered = value.strip().lower()
    if "null" in types and lowered in ("null", "none", "~"):
        return None
    if "boolean" in types and lowered in ("true", "false"):
        return lowered == "true"
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            pass
    return value


def coerce_strings(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Convert string values to the boolean, integer or number types the schema expects, in place.

    Snakemake reads nested ``--config key={...}`` values with YAML's base
    loader, so ``{"epochs": 3}`` arrives as the string ``'3'``. Values that do
    not parse are left for validation to report.
    """
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    defs = schema.get("$defs", {})

    def resolve(sub: Mapping) -> Mapping:
        while "$ref" in sub:
            sub = defs[sub["$ref"].split("/")[-1]]
        return sub

    def walk(node: Any, sub: Mapping) -> Any:
        sub = resolve(sub)
        types = sub.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        if isinstance(node, str) and not {"string"} & set(types):
            return _scalar_from_string(node, types)
        if isinstance(node, dict):
            properties = sub.get("properties", {})
            extra = sub.get("additionalProperties")
            for key, value in node.items():
                child = properties.get(key, extra if isinstance(extra, dict) else None)
                if child is not None:
                    node[key] = walk(value, child)
        if isinstance(node, list) and isinstance(sub.get("items"), dict):
            return [walk(item, sub["items"]) for item in node]
        return node

    return walk(config, schema)


def _deep_update(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def apply_extends(config: dict[str, Any], root: str | Path = ".") -> dict[str, Any]:
    """Merge ``config`` over the file its ``extends`` key names, in place.

    A config file may start from another one (``paper.yaml`` extends
    ``config.yaml``) and list only what differs. Nested mappings merge key by
    key; other values replace. ``root`` is the folder relative paths start from.
    """
    base_path = config.pop("extends", None)
    if base_path is None:
        return config
    path = Path(root) / base_path
    if not path.exists():
        raise ConfigError(f"extends: config file {path} not found; fix the path or remove the key")
    with open(path) as handle:
        base = yaml.safe_load(handle) or {}
    apply_extends(base, root)
    merged = _deep_update(base, config)
    config.clear()
    config.update(merged)
    return config


def load_config(config: dict[str, Any], root: str | Path = ".") -> dict[str, Any]:
    """Apply ``extends``, convert strings, validate, fill defaults and return ``config``."""
    apply_extends(config, root)
    coerce_strings(config)
    validate_config(config)
    return fill_defaults(config)


def enabled_datasets(config: Mapping[str, Any]) -> list[str]:
    """Return the names of the datasets whose ``enabled`` is true, in config order."""
    return [name for name, spec in config["datasets"].items() if spec.get("enabled", True)]


def builder_of(name: str, spec: Mapping[str, Any]) -> str:
    """Return the builder that makes dataset ``name`` (its own name unless set)."""
    return spec.get("builder") or name.split("-")[0]


def n_flipped(n: int, noise: Mapping[str, Any]) -> int:
    """Return how many of ``n`` training labels a ``label_noise`` entry flips."""
    if noise.get("first") is not None:
        return int(noise["first"])
    return max(1, round(float(noise["fraction"]) * n))


def n_permuted(spec: Mapping[str, Any]) -> int:
    """Return the number of points a dataset's permutations run over."""
    if spec.get("subgroup"):
        return int(spec.get("n_subgroup", 500))
    n = int(spec["n_train"])
    noise = spec.get("label_noise") or {}
    if noise.get("holdout"):
        # The flipped points are left out of the permutations.
        return max(1, n - n_flipped(n, noise))
    return n


def n_permutations_of(config: Mapping[str, Any], name: str) -> int:
    """Return T for dataset ``name``: its ``permutations`` or ⌈sampling.subsets / n⌉."""
    spec = config["datasets"][name]
    if spec.get("permutations"):
        return int(spec["permutations"])
    return math.ceil(config["sampling"]["subsets"] / n_permuted(spec))
