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


def load_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config``, fill its defaults and return it."""
    validate_config(config)
    return fill_defaults(config)


def enabled_datasets(config: Mapping[str, Any]) -> list[str]:
    """Return the names of the datasets whose ``enabled`` is true, in config order."""
    return [name for name, spec in config["datasets"].items() if spec.get("enabled", True)]


def builder_of(name: str, spec: Mapping[str, Any]) -> str:
    """Return the builder that makes dataset ``name`` (its own name unless set)."""
    return spec.get("builder") or name.split("-")[0]


def n_permuted(spec: Mapping[str, Any]) -> int:
    """Return the number of points a dataset's permutations run over."""
    if spec.get("subgroup"):
        return int(spec.get("n_subgroup", 500))
    return int(spec["n_train"])


def n_permutations_of(config: Mapping[str, Any], name: str) -> int:
    """Return T for dataset ``name``: its ``permutations`` or ⌈sampling.subsets / n⌉."""
    spec = config["datasets"][name]
    if spec.get("permutations"):
        return int(spec["permutations"])
    return math.ceil(config["sampling"]["subsets"] / n_permuted(spec))
