"""The configuration as one YAML document: export, parse with line-exact errors, and diff.

`tutela export` writes it, `tutela apply -f` reads it, the Serviceguard importer produces it.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tutela.kits.registry import KITS
from tutela.lcd.keypath import KEY_FIELDS
from tutela.model.config import (
    ACTIONS,
    COLLECTION_EXAMPLES,
    FORMAT,
    ClusterConfig,
    Resource,
    collection_message,
)
from tutela.model.errors import ConfigError, Problem

# libyaml's C parser and emitter when PyYAML has them: the pure-Python ones take most of a
# second for a document of 500 resources.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(config: ClusterConfig) -> str:
    """The configuration without default values, `format` and `name` first: the same bytes
    on every node at the same generation (see `_stable_order`)."""
    body = _stable_order(config, config.model_dump(mode="json", exclude_defaults=True,
                                                   exclude=UNEXPORTED))
    document = {"format": FORMAT, "name": config.name, **body}
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


UNEXPORTED = {"api_tokens"}
"""Kept out of the exported document: the API tokens' hashes are no secrets, but nobody
should paste them around ('tutela api token list' shows the tokens)."""


def keep_unexported(current: ClusterConfig, applied: ClusterConfig) -> ClusterConfig:
    """`applied` with the collections export leaves out as in force, unless it sets them:
    an exported document applied back must not revoke every API token."""
    kept = {name: getattr(current, name) for name in UNEXPORTED
            if name not in applied.model_fields_set}
    return applied.model_copy(update=kept) if kept else applied


def _stable_order(value: Any, dumped: Any) -> Any:
    """`dumped` (the JSON dump of `value`) with the keys of every free-form mapping in a
    stable order: a resource's `params` in the order its kit declares them (as `tutela kit
    show` lists them), its `timeouts` in the order of the actions, any other (a process's
    `env`) sorted.

    A model's fields keep the order they are declared in and lists keep theirs: both are
    the same on every node. The keys of a free-form mapping are in the order they were
    given on the node that made the change, and a copy replicated to another node need not
    keep that order.
    """
    if isinstance(value, BaseModel):
        ordered = {key: _stable_order(getattr(value, key), child)
                   for key, child in dumped.items()}
        if isinstance(value, Resource):
            kit = KITS.get(value.kit)
            for key, first in (("params", list(kit.Params.model_fields) if kit else []),
                               ("timeouts", list(ACTIONS))):
                if key in ordered:
                    ordered[key] = _known_first(ordered[key], first)
        return ordered
    if isinstance(value, list | tuple) and isinstance(dumped, list):
        return [_stable_order(item, child) for item, child in zip(value, dumped, strict=True)]
    return _sorted_mappings(dumped)


def _known_first(mapping: dict[str, Any], known: list[str]) -> dict[str, Any]:
    """`mapping` with the `known` keys first, in that order, then the others sorted."""
    rank = {key: index for index, key in enumerate(known)}
    return {key: mapping[key]
            for key in sorted(mapping, key=lambda key: (rank.get(key, len(rank)), key))}


def _sorted_mappings(dumped: Any) -> Any:
    if isinstance(dumped, dict):
        return {key: _sorted_mappings(dumped[key]) for key in sorted(dumped)}
    if isinstance(dumped, list):
        return [_sorted_mappings(item) for item in dumped]
    return dumped


def from_yaml(text: str, source: str = "<input>") -> ClusterConfig:
    """Parse a document; a ConfigError names the field (or file and line) and the fix."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([Problem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                   "correct the syntax at that position")]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, "expected a mapping at the top level",
                                   "start from the output of 'tutela export'")])
    return parse_config(data)


def parse_config(data: dict[str, Any]) -> ClusterConfig:
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(data, e) for e in exc.errors()]) from None


def _problem(data: dict[str, Any], error: Any) -> Problem:
    location = error["loc"]
    if error["type"] == "missing" and location and isinstance(location[-1], int):
        location = location[:-1]  # an item missing from a fixed-length list: name the list
    field = _field_path(data, location)
    collection = _collection_problem(error)
    if collection is not None:
        return Problem(field, *collection)
    if error["type"] == "missing":
        fix = "add it"
    elif error["type"] == "extra_forbidden":
        fix = "remove it or check its spelling (see 'tutela export' for the format)"
    else:
        fix = "correct the value"
    if error["type"] == "value_error":  # our own validators' words, without "Value error, "
        return Problem(field, str(error["ctx"]["error"]), fix)
    return Problem(field, error["msg"], fix)


def _collection_problem(error: Any) -> tuple[str, str] | None:
    """(message, fix) in plain words for a list or mapping field given something else;
    None for any other error."""
    message = collection_message(error)
    if message is None:
        return None
    example = COLLECTION_EXAMPLES.get(".".join(p for p in error["loc"] if isinstance(p, str)))
    return message, f"write it like {example}" if example else "see 'tutela export' for the format"


def _field_path(data: Any, location: tuple[Any, ...]) -> str:
    """Name list items by their tag/name/root instead of their index where possible."""
    parts: list[str] = []
    node = data
    for key in location:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
            label = next((node[k] for k in KEY_FIELDS
                          if isinstance(node, dict) and k in node), key)
            parts[-1:] = [f"{parts[-1]}[{label}]"] if parts else [f"[{label}]"]
            continue
        parts.append(str(key))
        node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)


def diff(old: ClusterConfig, new: ClusterConfig) -> list[str]:
    """Human-readable changes from `old` to `new`: '+ added', '- removed', '~ changed'."""
    before = _flatten(old.model_dump(mode="json"))
    after = _flatten(new.model_dump(mode="json"))
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            lines.append(f"- {key}: {before[key]!r}")
        elif key not in before:
            lines.append(f"+ {key}: {after[key]!r}")
        elif before[key] != after[key]:
            lines.append(f"~ {key}: {before[key]!r} -> {after[key]!r}")
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts and keyed lists into 'resources[app].params.command' paths."""
    if isinstance(value, dict):
        items: dict[str, Any] = {}
        for key, child in value.items():
            items.update(_flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = {}
        for index, child in enumerate(value):
            label = next((child[k] for k in KEY_FIELDS if k in child), index)
            items.update(_flatten(child, f"{prefix}[{label}]"))
        return items
    return {prefix: value}
