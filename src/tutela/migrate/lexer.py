"""Restricted lexers for Serviceguard files: KEYWORD VALUE lines and shell assignments.

They read text as data with line numbers, never execute it, and record problems instead of raising.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]*)\])?=")
_FUNCTION = re.compile(
    r"\s*(?:function\s+([A-Za-z_]\w*)\s*(?:\(\s*\))?|([A-Za-z_]\w*)\s*\(\s*\))\s*(\{)?")
_OPENERS = frozenset({"if", "case", "for", "while", "until", "select"})
_CLOSERS = frozenset({"fi", "esac", "done"})
_DECLARERS = frozenset({"export", "readonly"})
_WORD_BREAK = frozenset(" \t;&|()\n")


@dataclass(frozen=True)
class Loc:
    """Where something was read: a display file name and a line (or a range of lines)."""

    file: str
    line: int
    end: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" + (f"-{self.end}" if self.end > self.line else "")

    @property
    def last(self) -> int:
        return max(self.line, self.end)


@dataclass(frozen=True)
class Value:
    """One KEYWORD VALUE line or one shell assignment, as data."""

    key: str
    """The keyword or variable name in lower case, without an array index."""
    text: str
    """The value with its quotes removed."""
    loc: Loc
    raw: str
    """The statement as written, for the report."""
    index: int | None = None


@dataclass(frozen=True)
class Issue:
    """A malformed line: where it is and what is wrong with it."""

    loc: Loc
    message: str


@dataclass(frozen=True)
class Function:
    """A shell function definition; its body is kept as text, never run here."""

    name: str
    loc: Loc
    body: str
    body_line: int
    """Line number of the first character of `body`."""


@dataclass
class ShellScript:
    assignments: list[Value] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    code: list[Loc] = field(default_factory=list)
    """Statements that are not plain assignments: reported as not interpreted."""
    exports: list[Value] = field(default_factory=list)
    """`export NAME` / `readonly NAME` without a value."""
    issues: list[Issue] = field(default_factory=list)


def source_lines(text: str) -> list[str]:
    """Lines split on newlines only (form feeds and the like stay in their line)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def is_content(line: str) -> bool:
    """Whether a line carries anything: not blank and not a comment."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def is_number(text: str) -> bool:
    """Plain ASCII digits of a sane length (str.isdigit accepts '²'; int() rejects huge)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- KEYWORD VALUE files (cluster ASCII files, package configuration files) ---------------

def read_keywords(text: str, file: str) -> tuple[list[Value], list[Issue]]:
    """Every `KEYWORD value  # comment` line; keywords are returned in lower case."""
    values: list[Value] = []
    issues: list[Issue] = []
    for number, line in enumerate(source_lines(text), 1):
        if not is_content(line):
            continue
        loc = Loc(file, number)
        stripped = line.strip()
        match = _KEYWORD.match(stripped)
        if match is None or (match.end() < len(stripped)
                             and not stripped[match.end()].isspace()):
            issues.append(Issue(loc, f"expected 'KEYWORD value', found {shorten(stripped)!r}"))
            continue
        value, closed = _keyword_value(stripped[match.end():])
        if not closed:
            issues.append(Issue(loc, f"unterminated quote in the value of {match.group()}"))
            continue
        values.append(Value(match.group().lower(), value, loc, shorten(stripped, 80)))
    return values, issues


def _keyword_value(rest: str) -> tuple[str, bool]:
    """The value with quotes removed and a trailing `# comment` cut; False if a quote is open."""
    out: list[str] = []
    quote = ""
    previous = " "
    for char in rest:
        if quote:
            if char == quote:
                quote = ""
            else:
                out.append(char)
        elif char in "\"'":
            quote = char
        elif char == "#" and previous.isspace():
            break
        else:
            out.append(char)
        previous = char
    return "".join(out).strip(), not quote


# --- shell control scripts ----------------------------------------------------------------

class _Text:
    """The script as one string with line numbers, scanned with shell quoting rules."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def loc(self, start: int, end: int) -> Loc:
        first, last = self.line_of(start), self.line_of(max(start, end - 1))
        return Loc(self.file, first, last if last > first else 0)

    def statement_end(self, start: int) -> tuple[int, bool]:
        """Offset of the unquoted newline (or end) closing the statement at `start`.

        Quoted newlines and backslash-newline continue the statement, as in the shell.
        The flag is False when the text ends inside a quote.
        """
        scan = self._unquoted(start)
        for i, char in scan:
            if char == "#" and (i == start or self.text[i - 1] in _WORD_BREAK):
                newline = self.text.find("\n", i)
                return (len(self.text), True) if newline < 0 else (newline, True)
            if char == "\n":
                return i, True
        return len(self.text), not scan.in_quote

    def matching_brace(self, start: int) -> int | None:
        """Offset of the `}` closing the `{` at `start`, skipping quotes and comments."""
        depth = 0
        scan = self._unquoted(start)
        for i, char in scan:
            if char == "#" and self.text[i - 1] in _WORD_BREAK:
                scan.skip_to(self.text.find("\n", i))
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return i
        return None

    def _unquoted(self, start: int) -> _Unquoted:
        return _Unquoted(self.text, start)


class _Unquoted:
    """Walks shell text from `start`, yielding only characters outside quotes and escapes."""

    def __init__(self, text: str, start: int) -> None:
        self.text, self.position, self.quote = text, start, ""

    @property
    def in_quote(self) -> bool:
        return bool(self.quote)

    def skip_to(self, offset: int) -> None:
        """Continue at `offset` (-1: the end), e.g. past a comment."""
        self.position = len(self.text) if offset < 0 else offset

    def __iter__(self) -> Iterator[tuple[int, str]]:
        text = self.text
        while self.position < len(text):
            i, char = self.position, text[self.position]
            self.position += 1
            if self.quote == "'":
                self.quote = "" if char == "'" else self.quote
            elif char == "\\":
                self.position += 1
            elif self.quote == '"':
                self.quote = "" if char == '"' else self.quote
            elif char in "\"'":
                self.quote = char
            else:
                yield i, char


def read_shell(text: str, file: str) -> ShellScript:
    """Assignments (`NAME=v`, `NAME[i]=v`, several per line) and function bodies, as data.

    Everything else (commands, conditionals, loops) is listed in `code`, never interpreted;
    assignments inside conditionals or loops are code too, since they may not take effect.
    """
    source, script = _Text(text, file), ShellScript()
    offset, depth = 0, 0
    while offset < len(text):
        end, closed = source.statement_end(offset)
        statement = text[offset:end]
        if not closed:
            # Report the line and go on with the next one, so one typo hides nothing else.
            end = _line_end(text, offset)
            script.issues.append(Issue(source.loc(offset, end), "unterminated quote"))
            script.code.append(source.loc(offset, end))
        elif statement.strip() and not statement.strip().startswith("#"):
            function_end = _function(source, offset, end, script) if depth == 0 else None
            if function_end is not None:
                end = function_end
            else:
                depth = _statement(source, offset, statement, depth, script)
        offset = end + 1
    return script


def _function(source: _Text, start: int, end: int, script: ShellScript) -> int | None:
    """Read a function definition starting at `start`; the offset after it, or None."""
    header = _FUNCTION.match(source.text, start, end)
    if header is None:
        return None
    name = header.group(1) or header.group(2)
    if header.group(3):
        brace = header.start(3)
    else:
        if source.text[header.end():end].split("#")[0].strip():
            return None
        brace = source.text.find("{", end)
        if brace < 0 or source.text[end:brace].strip():
            return None
    close = source.matching_brace(brace)
    if close is None:
        script.issues.append(Issue(source.loc(start, len(source.text)),
                                   f"function {name} is not closed with '}}'"))
        script.code.append(source.loc(start, len(source.text)))
        return len(source.text)
    body = source.text[brace + 1:close]
    script.functions.append(Function(name, source.loc(start, close + 1), body,
                                     source.line_of(brace + 1)))
    newline = source.text.find("\n", close)
    return len(source.text) if newline < 0 else newline


def _statement(source: _Text, start: int, statement: str, depth: int,
               script: ShellScript) -> int:
    """Record the assignments of one statement line; return the new compound depth."""
    loc = source.loc(start, start + len(statement))
    is_code = False
    for segment in _split(statement, ";"):
        words = _split(segment, " \t\n")
        if not words:
            continue
        depth = _nesting(words[0], depth)
        values = _assignments(words, loc) if depth == 0 else None
        exports = _exports(words, loc) if depth == 0 and values is None else None
        if exports is not None:
            script.exports.extend(exports)
        elif values is None:
            is_code = True
        else:
            script.assignments.extend(values)
    if is_code:
        script.code.append(loc)
    return depth


def _line_end(text: str, offset: int) -> int:
    newline = text.find("\n", offset)
    return len(text) if newline < 0 else newline


def _nesting(first_word: str, depth: int) -> int:
    """Track if/case/loop nesting by the first word of each command, well enough for data."""
    if first_word in _OPENERS:
        return depth + 1
    if first_word in _CLOSERS:
        return max(0, depth - 1)
    return depth


def _assignments(words: list[str], loc: Loc) -> list[Value] | None:
    """The assignments of a simple command made only of them, else None."""
    if words[0] in _DECLARERS:
        words = words[1:]
    values = []
    for word in words:
        match = _ASSIGNMENT.match(word)
        if match is None or not _plain_word(word[match.end():]):
            return None
        index = match.group(2)
        if index is not None and not is_number(index.strip()):
            return None
        values.append(Value(match.group(1).lower(), _unquote(word[match.end():]), loc,
                            shorten(word, 80), None if index is None else int(index)))
    return values or None


def _exports(words: list[str], loc: Loc) -> list[Value] | None:
    """`export A B` with bare names only, else None."""
    if words[0] not in _DECLARERS or len(words) < 2 or not all(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", w) for w in words[1:]):
        return None
    return [Value(w.lower(), "", loc, f"{words[0]} {w}") for w in words[1:]]


def _plain_word(word: str) -> bool:
    """A value without unquoted parentheses, pipes or redirections (those make it code)."""
    return not any(char in "()<>|&`" for _, char in _Unquoted(word, 0))


def _split(text: str, separators: str) -> list[str]:
    """Split on unquoted separator characters; a `#` at a word start ends the text."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in _WORD_BREAK):
            break
        elif char in separators:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _unquote(word: str) -> str:
    """Remove shell quoting from one word; expansions like $VAR stay as written."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(word):
        char = word[i]
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                out.append(char)
        elif char == "\\" and i + 1 < len(word):
            following = word[i + 1]
            if quote == '"' and following not in '"\\$`\n':
                out.append(char)
            elif following != "\n":
                out.append(following)
            i += 1
        elif quote == '"' and char == '"':
            quote = ""
        elif not quote and char in "\"'":
            quote = char
        else:
            out.append(char)
        i += 1
    return "".join(out)
