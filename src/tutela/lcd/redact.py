"""What must never leave a node in a report (the support bundle): the one place that says
which names and values are secret, and how they are taken out of data and of text. Pure.

A value is secret when the name it is stored under has one of SECRET_WORDS in it: a
resource parameter (`password`, `db_passwd`), a key of a map inside one (a process's
`env: {APP_TOKEN: ...}`), a row of the LCD's meta table (`cluster_key`), and whatever later
sections of the configuration hold (notification targets: a webhook's HMAC `secret`, an
SNMP `community`, `auth_key` and `priv_key`, an SMTP `password`): extend SECRET_WORDS,
not the callers. The rule errs towards redacting: a `key_file` path is redacted too.

Text (logs, command outputs) is scrubbed twice over: every secret value known to the node
(`secret_values`: its cluster keys, each value under a secret name in its configuration) is
replaced wherever it occurs, and anything written as NAME=VALUE, NAME: VALUE, "NAME": "VALUE"
or --NAME VALUE with a secret NAME loses its VALUE (a token typed on a command line that a
log repeats, a password in a fence command).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

REDACTED = "[redacted]"
SECRET_WORDS: tuple[str, ...] = ("passw", "passphrase", "secret", "token", "credential")
"""A name with any of these in it (case-insensitive) names a secret: `monpassword` too."""
SECRET_PREFIXES: tuple[str, ...] = ("key", "auth", "community")
"""A name with a part (between `_`, `-`, `.`) that starts with one of these names a secret:
`auth_key`, `smtp-auth`, `keyfile`, not `unauthenticated` or `monkey`."""
MIN_SCRUBBED = 4
"""Secret values shorter than this are redacted where they are stored but not searched for
in text, where they would blank out ordinary words and numbers."""

_WORDS = "|".join(map(re.escape, SECRET_WORDS))
_PREFIXES = "|".join(map(re.escape, SECRET_PREFIXES))
_NAME = rf"(?:[\w.-]*(?:{_WORDS})[\w.-]*|(?:[\w.-]*[_.-])?(?:{_PREFIXES})[\w.-]*)"
_SECRET_NAME = re.compile(rf"(?<![\w.-]){_NAME}(?![\w.-])", re.IGNORECASE)
_QUOTED_OR_BARE = r"""(?!\[redacted\])(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;}\]"']+)"""
_TEXT_RULES: tuple[re.Pattern[str], ...] = (
    # "password": "x", password: x, password=x, TOKEN='x'
    re.compile(rf"""(?P<name>(?<![\w.-])["']?{_NAME}["']?[ \t]*[=:][ \t]*){_QUOTED_OR_BARE}""",
               re.IGNORECASE),
    # --password x, -token x (a command line a log or a process listing repeats)
    re.compile(rf"(?P<name>(?<![\w-])--?{_NAME}[ \t]+)(?!-){_QUOTED_OR_BARE}",
               re.IGNORECASE),
)


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.fullmatch(name) is not None


def redact_tree(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, scalars) with every entry under a secret name
    replaced by REDACTED, at any depth; an empty or null secret stays as it is (it shows
    that none is set)."""
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_name(str(key)) and item not in (None, "")
                else redact_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_tree(item) for item in value]
    return value


def secret_values(value: Any) -> set[str]:
    """Every scalar stored under a secret name in `value` (at any depth), as text."""
    return {text for text in _values_under_secret_names(value, False) if text}


def _values_under_secret_names(value: Any, secret: bool) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _values_under_secret_names(item, secret or is_secret_name(str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _values_under_secret_names(item, secret)
    elif secret and value is not None and not isinstance(value, bool):
        yield str(value)


class Scrubber:
    """Takes secrets out of text: the known values, then the NAME=VALUE forms."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.known = frozenset(v for v in values if len(v) >= MIN_SCRUBBED)
        longest_first = sorted(self.known, key=len, reverse=True)
        self._values = (re.compile("|".join(map(re.escape, longest_first)))
                        if longest_first else None)

    def with_values(self, values: Iterable[str]) -> Scrubber:
        """A scrubber that also knows `values`."""
        return Scrubber([*self.known, *values])

    def file(self, name: str, text: str) -> str:
        """The text of the file `name`: a .json file that parses stays valid JSON."""
        if name.endswith(".json"):
            try:
                value = json.loads(text)
            except ValueError:
                return self.text(text)
            return json.dumps(self.json_value(value), indent=2, sort_keys=True) + "\n"
        return self.text(text)

    def json_value(self, value: Any) -> Any:
        """`value` (JSON-like) with secret names redacted and every string scrubbed: what
        `text` does for text, keeping it valid JSON."""
        value = redact_tree(value)
        if isinstance(value, dict):
            return {key: self.json_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.json_value(item) for item in value]
        return self.text(value) if isinstance(value, str) else value

    def text(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        for rule in _TEXT_RULES:
            text = rule.sub(_keep_name, text)
        return text


def _keep_name(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['name']}{quote}{REDACTED}{quote}"
