"""Keys into the configuration document, for `tutela config get` and `tutela config set`.

A key is a path of field names from the top of the document (the JSON form of
ClusterConfig, defaults included): `settings.lease_duration`,
`settings.failover_damping.hold`. An entry of a list is named by its key field, the same
one `tutela apply`'s diff and errors show in brackets: a node or user by `name`, a
resource by `tag`, a hierarchy by `root`, an equivalency by `node`
(`hierarchies.web.equivalencies.node2.priority`). Lists whose entries have no such field
(comm paths, witnesses, addresses) are indexed from 0 (`comm_paths.0.priority`). Either
form may be written in brackets (`resources[data].params.mountpoint`, `comm_paths[0]`),
which a name containing a dot needs (`nodes[db1.example.com].failover`).

`set_value` only builds the new document: the daemon validates it like any applied one.
"""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel

from tutela.model.config import ClusterConfig, HierarchySettings, Node
from tutela.model.errors import ConfigError, Problem

KEY_FIELDS = ("id", "tag", "name", "root", "node")
"""`id` first: api_tokens[ID] (a token's name need not be unique)."""
"""The field naming an entry of a list, the first of these its entries have (as the diff
of `tutela apply` names them)."""
IMPLIED_ENTRIES: tuple[type[BaseModel], ...] = (HierarchySettings,)
"""Entries that exist with their defaults when not written: every root has hierarchy
settings, so `hierarchies.web.switchback` may be set before `web` has an entry."""
WRITTEN_BY_NODES = {
    "watchdog": "it is recorded by {node} itself at every start of its tutelad: fix the "
                "watchdog there, then restart tutelad on {node} (docs/failover.md, "
                "'Lease and watchdog')",
    "maintenance": "it is set and cleared by {node} itself: 'tutela start' on {node} ends "
                   "it, 'tutela switchover ROOT --to NODE' confirms a takeover from it",
}
"""Fields of a node's entry that only the node writes, with the way to change each: `config
set` refuses them and `apply` keeps them (tutela.daemon.service._keep_recorded)."""
_PLAIN = re.compile(r"[^.\[\]]+")


def split_key(key: str) -> list[str]:
    """The parts of `key`: `a.b[c.d].e` -> a, b, c.d, e."""
    parts: list[str] = []
    position = 0
    while position < len(key):
        if key[position] == "[":
            end = key.find("]", position)
            if end <= position + 1:
                raise _bad_key(key, "a '[' without a name and a closing ']'")
            parts.append(key[position + 1:end])
            position = end + 1
        else:
            match = _PLAIN.match(key, position)
            if match is None:
                raise _bad_key(key, f"an empty part at character {position + 1}")
            parts.append(match.group())
            position = match.end()
        if position < len(key):
            if key[position] == ".":
                position += 1
                if position == len(key):
                    raise _bad_key(key, "a '.' at the end")
            elif key[position] != "[":
                raise _bad_key(key, f"{key[position]!r} at character {position + 1}")
    if not parts:
        raise _bad_key(key, "nothing")
    return parts


def _bad_key(key: str, what: str) -> ConfigError:
    return ConfigError([Problem("KEY", f"{key!r} is not a key: it has {what}",
                                "write it as a dotted path, e.g. settings.lease_duration "
                                "or hierarchies.web.switchback")])


def parse_value(text: str) -> Any:
    """VALUE as YAML: a scalar (`auto`, `1.61`, `true`, `null`) or flow (`[a, b]`,
    `{hold: 0}`). Dates stay strings: the document has none, and JSON carries none."""
    try:
        value = yaml.load(text, Loader=_NoDatesLoader)  # a safe loader
    except yaml.YAMLError as error:
        raise ConfigError([Problem("VALUE", f"{text!r} is not valid YAML: "
                                   f"{getattr(error, 'problem', error)}",
                                   "quote it for the shell and for YAML, e.g. "
                                   "'\"a: b\"' for the string a: b")]) from None
    try:
        json.dumps(value)  # what the control socket carries
    except (TypeError, ValueError):
        raise ConfigError([Problem("VALUE", f"{text!r} is not a value the document holds "
                                   f"(a {type(value).__name__})", "give a string, number, "
                                   "true/false, null, list or mapping")]) from None
    return value


class _NoDatesLoader(yaml.SafeLoader):
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def get_value(document: dict[str, Any], key: str) -> Any:
    """The value at `key` in `document` (a ClusterConfig dumped as JSON, defaults
    included); ConfigError naming the key and the keys there are, if there is none."""
    value: Any = document
    shape: Any = ClusterConfig
    done = ""
    for part in split_key(key):
        value, shape, done = _child(document, value, shape, part, done, creating=False)
    return value


def set_value(document: dict[str, Any], key: str, new: Any) -> dict[str, Any]:
    """A copy of `document` with the value at `key` replaced by `new` (an entry of a list,
    named by its key field, is added if missing); ConfigError for a key that cannot be
    there or that only a node writes. The result is not validated."""
    updated: dict[str, Any] = _replaced(document, document, ClusterConfig, split_key(key),
                                        "", new)
    return updated


def _replaced(document: dict[str, Any], value: Any, shape: Any, parts: list[str],
              done: str, new: Any) -> Any:
    """`value` (of type `shape`, at key `done`) with the value at `parts` below it `new`."""
    if not parts:
        return new
    part, rest = parts[0], parts[1:]
    child, child_shape, here = _child(document, value, shape, part, done, creating=True,
                                      whole=not rest)
    if not rest:
        new = _whole_entry(value, shape, part, here, new)
    replaced = _replaced(document, child, child_shape, rest, here, new)
    if isinstance(value, list):
        entries = list(value)
        index = _entry_index(value, _item_shape(shape), part)
        if index is None:
            entries.append(replaced)
        else:
            entries[index] = replaced
        return entries
    return {**(value or {}), part: replaced}


def _whole_entry(value: Any, shape: Any, part: str, here: str, new: Any) -> Any:
    """`new` as a whole entry of a keyed list: its key field is the one the key names."""
    if not isinstance(value, list):
        return new
    field = _key_field(_item_shape(shape))
    if field is None or not isinstance(new, dict):
        return new  # an index, or not a mapping: validation says what is wrong
    if field in new and str(new[field]) != part:
        raise ConfigError([Problem(here, f"the entry's {field} is {new[field]!r}, but the "
                                   f"key names {part!r}", f"leave {field} out, or use the "
                                   f"same {field} in the key and the value")])
    return {field: part, **new}


def _child(document: dict[str, Any], value: Any, shape: Any, part: str, done: str,
           creating: bool, whole: bool = False) -> tuple[Any, Any, str]:
    """The value under `value` at `part`, its shape and its key; creating: the value a
    set may put there where there is none yet (a mapping's key; a list's entry only when
    it is set whole, so that a misspelt node is not made a new node)."""
    model = _model(shape)
    if model is not None:
        return _field(value, model, part, done, writing=creating)
    item = _item_shape(shape)
    if item is not None or isinstance(value, list):
        return _entry(document, value or [], item, part, done, creating and whole)
    if _is_mapping(shape) or isinstance(value, dict) or (
            value is None and creating and shape is Any):  # a free-form mapping's new key
        mapping = value or {}
        here = _joined(done, part)
        if part not in mapping and not creating:
            raise ConfigError([Problem(here, f"{done} has no {part!r}",
                                       f"use one of: {_listed(mapping)}")])
        return mapping.get(part), _value_shape(shape), here
    raise ConfigError([Problem(done, f"{done} is a single value ({value!r}), not a section",
                               f"set {done} itself, e.g. tutela config set {done} VALUE")])


def _field(value: Any, model: type[BaseModel], part: str, done: str, writing: bool
           ) -> tuple[Any, Any, str]:
    here = _joined(done, part)
    if part not in model.model_fields:
        where = done or "the document"
        raise ConfigError([Problem(here, f"{where} has no key {part!r}",
                                   f"use one of: {_listed(model.model_fields)}")])
    if writing and model is Node and part in WRITTEN_BY_NODES:
        node = done.rpartition("[")[2].rstrip("]")
        raise ConfigError([Problem(here, "only the node itself writes this field; "
                                   "'tutela config set' and 'tutela apply' keep it",
                                   WRITTEN_BY_NODES[part].format(node=node))])
    mapping = value if isinstance(value, dict) else {}
    return mapping.get(part), model.model_fields[part].annotation, here


def _entry(document: dict[str, Any], entries: list[Any], item: Any, part: str, done: str,
           creating: bool) -> tuple[Any, Any, str]:
    """The entry of a list named by `part` (its key field, or an index)."""
    here = f"{done}[{part}]"
    index = _entry_index(entries, item, part)
    if index is not None:
        return entries[index], item, here
    field = _key_field(item)
    if field is None:
        fix = (f"use an index from 0 to {len(entries) - 1}" if entries
               else f"{done} is empty: set {done} whole, e.g. tutela config set {done} "
                    "'[...]'")
        raise ConfigError([Problem(here, f"{done} has no entry {part!r}", fix)])
    implied = _implied(document, item, part)
    if implied is not None:
        return implied, item, here
    if creating:
        return {field: part}, item, here
    labels = [e.get(field) for e in entries if isinstance(e, dict)]
    message = f"{done} has no entry with {field} {part!r}"
    if item in IMPLIED_ENTRIES:
        labels += sorted(_roots(document) - set(labels))
        message = f"{part!r} is not the root of a hierarchy"
    raise ConfigError([Problem(here, message, f"use one of: {_listed(labels)}")])


def _implied(document: dict[str, Any], item: Any, label: str) -> dict[str, Any] | None:
    """The settings of a root that has no entry yet: its defaults."""
    if item not in IMPLIED_ENTRIES or label not in _roots(document):
        return None
    implied: dict[str, Any] = item.model_validate({"root": label}).model_dump(mode="json")
    return implied


def _roots(document: dict[str, Any]) -> set[str]:
    """The tags of the resources no other resource depends on."""
    resources = [r for r in document.get("resources", []) if isinstance(r, dict)]
    children = {child for r in resources for child in r.get("depends_on", [])}
    return {str(r.get("tag")) for r in resources} - children


def _entry_index(entries: list[Any], item: Any, part: str) -> int | None:
    field = _key_field(item)
    if field is not None:
        return next((i for i, e in enumerate(entries)
                     if isinstance(e, dict) and str(e.get(field)) == part), None)
    if part.isdigit() and int(part) < len(entries):
        return int(part)
    return None


def _key_field(item: Any) -> str | None:
    model = _model(item)
    if model is None:
        return None
    return next((f for f in KEY_FIELDS if f in model.model_fields), None)


def _joined(done: str, part: str) -> str:
    return f"{done}.{part}" if done else part


def _listed(names: Any) -> str:
    return ", ".join(str(name) for name in names) or "none yet"


# --- the shapes of the document's fields, from ClusterConfig's annotations --------------

def _unwrapped(shape: Any) -> Any:
    """`X | None` -> X; anything else as it is."""
    if typing.get_origin(shape) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(shape) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return shape


def _model(shape: Any) -> type[BaseModel] | None:
    shape = _unwrapped(shape)
    return shape if isinstance(shape, type) and issubclass(shape, BaseModel) else None


def _item_shape(shape: Any) -> Any:
    """The shape of each entry of a list field (`tuple[X, ...]`); None for other fields.
    Fixed-length tuples (a comm path's `nodes`) are indexed the same way."""
    shape = _unwrapped(shape)
    if typing.get_origin(shape) in (tuple, list):
        return typing.get_args(shape)[0]
    return None


def _is_mapping(shape: Any) -> bool:
    return typing.get_origin(_unwrapped(shape)) is dict


def _value_shape(shape: Any) -> Any:
    return typing.get_args(_unwrapped(shape))[1] if _is_mapping(shape) else Any
