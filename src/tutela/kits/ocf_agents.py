"""OCF resource agents on this node: where they are, what their meta-data says, and which
Pacemaker-only tools they call.

An agent is /usr/lib/ocf/resource.d/PROVIDER/AGENT, named `ocf:PROVIDER:AGENT`. Its
`meta-data` action prints XML (the OCF resource agent API) with its parameters and its
advised action timeouts; it is parsed with the standard library and cached per agent path
and modification time, so an upgraded agent is read again.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

OCF_ROOT = Path("/usr/lib/ocf")
PREFIX = "ocf"
META_DATA_TIMEOUT = 10.0
DEFAULT_ACTION_TIMEOUT = 20.0  # Pacemaker's default operation timeout
PARAM_TYPES = ("string", "integer", "boolean")
BOOLEAN_WORDS = {"1", "0", "yes", "no", "true", "false", "on", "off", "y", "n"}
"""What ocf-shellfuncs' ocf_is_true reads as true (1 yes true on y), and their opposites."""


class AgentError(Exception):
    """An agent name that names nothing, or an agent whose meta-data cannot be read."""


@dataclass(frozen=True)
class AgentName:
    provider: str
    agent: str

    @property
    def kit(self) -> str:
        return f"{PREFIX}:{self.provider}:{self.agent}"

    @property
    def path(self) -> Path:
        return OCF_ROOT / "resource.d" / self.provider / self.agent


def parse_name(kit: str) -> AgentName:
    """`ocf:PROVIDER:AGENT` -> its parts; AgentError says how to write it."""
    parts = kit.split(":")
    if len(parts) != 3 or parts[0] != PREFIX or not all(parts[1:]) or any(
            "/" in part or part.startswith(".") for part in parts[1:]):
        raise AgentError(f"{kit!r} is not an OCF agent name; write ocf:PROVIDER:AGENT, "
                         "e.g. ocf:heartbeat:IPaddr2 (tutela kit list shows them)")
    return AgentName(parts[1], parts[2])


def installed() -> list[AgentName]:
    """Every executable agent under OCF_ROOT/resource.d, sorted by provider and agent."""
    found = []
    for provider in sorted(_entries(OCF_ROOT / "resource.d")):
        for agent in sorted(_entries(OCF_ROOT / "resource.d" / provider)):
            path = OCF_ROOT / "resource.d" / provider / agent
            if path.is_file() and os.access(path, os.X_OK):
                found.append(AgentName(provider, agent))
    return found


def _entries(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in directory.iterdir() if not entry.name.startswith(".")
                and entry.name != "__pycache__"]
    except FileNotFoundError:
        return []


# --- meta-data --------------------------------------------------------------------------

@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    """string, integer or boolean (anything else an agent declares is read as string)."""
    required: bool
    default: str | None
    shortdesc: str
    longdesc: str
    unique: bool


@dataclass(frozen=True)
class Action:
    name: str
    timeout: float | None
    interval: float | None
    depth: int | None


@dataclass(frozen=True)
class AgentMeta:
    name: AgentName
    version: str
    shortdesc: str
    longdesc: str
    parameters: tuple[Parameter, ...]
    actions: tuple[Action, ...]

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def action_timeout(self, action: str) -> float:
        """The timeout the agent advises for `action` (the longest of its entries), else
        Pacemaker's default of 20 s."""
        timeouts = [a.timeout for a in self.actions if a.name == action and a.timeout]
        return max(timeouts) if timeouts else DEFAULT_ACTION_TIMEOUT

    def monitor_interval(self) -> float | None:
        intervals = [a.interval for a in self.actions if a.name == "monitor" and a.interval]
        return min(intervals) if intervals else None

    def check_levels(self) -> list[int]:
        """The monitor depths (OCF_CHECK_LEVEL) the agent advertises."""
        return sorted({a.depth for a in self.actions
                       if a.name == "monitor" and a.depth is not None})

    def supports(self, action: str) -> bool:
        return any(a.name == action for a in self.actions)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|msec|us|usec|s|sec|m|min|h|hr)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6,
                 "usec": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a meta-data duration ("20s", "20", "2min", "500ms"), None if unreadable."""
    match = _DURATION.match(text or "")
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_meta_data(name: AgentName, xml: str) -> AgentMeta:
    """AgentMeta from an agent's meta-data XML; AgentError if it is not such XML."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise AgentError(f"{name.kit}: its meta-data is not XML ({exc})") from None
    if root.tag != "resource-agent":
        raise AgentError(f"{name.kit}: its meta-data has <{root.tag}>, not <resource-agent>")
    return AgentMeta(
        name=name, version=_text(root, "version") or root.get("version", ""),
        shortdesc=_text(root, "shortdesc"), longdesc=_text(root, "longdesc"),
        parameters=tuple(_parameter(p) for p in root.iterfind("parameters/parameter")
                         if p.get("name")),
        actions=tuple(_action(a) for a in root.iterfind("actions/action") if a.get("name")))


def _text(element: ElementTree.Element, path: str) -> str:
    """The English (or first) text of `path` under `element`, whitespace folded."""
    found = element.findall(path)
    chosen = next((e for e in found if e.get("lang", "en") == "en"), found[0] if found else None)
    return " ".join((chosen.text or "").split()) if chosen is not None else ""


def _parameter(element: ElementTree.Element) -> Parameter:
    content = element.find("content")
    declared = content.get("type", "string") if content is not None else "string"
    default = content.get("default") if content is not None else None
    return Parameter(
        name=element.get("name", ""), type=declared if declared in PARAM_TYPES else "string",
        required=element.get("required", "0") in ("1", "true"), default=default,
        shortdesc=_text(element, "shortdesc"), longdesc=_text(element, "longdesc"),
        unique=element.get("unique", "0") in ("1", "true"))


def _action(element: ElementTree.Element) -> Action:
    depth = element.get("depth")
    return Action(name=element.get("name", ""), timeout=parse_duration(element.get("timeout")),
                  interval=parse_duration(element.get("interval")),
                  depth=int(depth) if depth is not None and depth.isdigit() else None)


@dataclass
class _Cache:
    entries: dict[Path, tuple[tuple[int, int], AgentMeta]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _Cache()


def cache_dir() -> Path:
    """Where the agents' meta-data XML is kept between runs (each `meta-data` is a shell
    start-up: listing 140 agents afresh takes seconds)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tutela" / "ocf-meta-data"


def meta_data(name: AgentName) -> AgentMeta:
    """The agent's meta-data, run once per agent path and modification time (kept in
    memory, and on disk under cache_dir())."""
    path = name.path
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise AgentError(f"{name.kit}: no agent {path} on this node; install it (Debian: "
                         "apt-get install resource-agents), or see tutela kit list") from None
    key = (stat.st_mtime_ns, stat.st_size)
    with _cache.lock:
        cached = _cache.entries.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    stored = cache_dir() / f"{name.provider}+{name.agent}.{key[0]}.{key[1]}.xml"
    try:
        xml = stored.read_text()
    except OSError:
        xml = _run_meta_data(name)
        _store(stored, xml)
    parsed = parse_meta_data(name, xml)
    with _cache.lock:
        _cache.entries[path] = (key, parsed)
    return parsed


def _store(path: Path, xml: str) -> None:
    """Keep the XML for the next run; a cache that cannot be written is only slower.
    Older versions of the same agent's XML are deleted."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(path.name.split(".", 1)[0] + ".*.xml"):
            old.unlink(missing_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.write_text(xml)
        temporary.replace(path)
    except OSError:
        pass


def _run_meta_data(name: AgentName) -> str:
    env = {**os.environ, "OCF_ROOT": str(OCF_ROOT), "OCF_RESOURCE_INSTANCE": "RESOURCE_ID",
           "OCF_RESOURCE_TYPE": name.agent, "OCF_RESOURCE_PROVIDER": name.provider}
    try:
        result = subprocess.run([str(name.path), "meta-data"], capture_output=True, text=True,
                                env=env, timeout=META_DATA_TIMEOUT, stdin=subprocess.DEVNULL,
                                cwd="/", check=False)
    except subprocess.TimeoutExpired:
        raise AgentError(f"{name.kit}: 'meta-data' took over {META_DATA_TIMEOUT:g}s") from None
    except OSError as exc:
        raise AgentError(f"{name.kit}: cannot run {name.path}: {exc.strerror}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AgentError(f"{name.kit}: 'meta-data' exited {result.returncode}: {last}")
    return result.stdout


def all_meta_data(names: list[AgentName], workers: int = 4
                  ) -> Iterator[tuple[AgentName, AgentMeta | AgentError]]:
    """Meta-data of many agents, a few at a time (each is a shell script start-up)."""
    def one(name: AgentName) -> AgentMeta | AgentError:
        try:
            return meta_data(name)
        except AgentError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from zip(names, pool.map(one, names), strict=True)


# --- Pacemaker-only tools ---------------------------------------------------------------

PACEMAKER_TOOLS = {
    "crm_node": "Pacemaker's node membership (crm_node)",
    "attrd_updater": "Pacemaker's attribute daemon (attrd_updater)",
    "crm_attribute": "Pacemaker's attribute daemon / CIB (crm_attribute)",
    "crm_master": "Pacemaker's promotion scores in the CIB (crm_master)",
    "ocf_promotion_score": "Pacemaker's promotion scores in the CIB (ocf_promotion_score, "
                           "which runs crm_attribute or crm_master)",
    "crm_resource": "Pacemaker's CIB (crm_resource)",
    "cibadmin": "Pacemaker's CIB (cibadmin)",
    "crm_mon": "Pacemaker's cluster status (crm_mon)",
    "crm_mon_no_validation": "Pacemaker's cluster status (crm_mon_no_validation, which runs "
                             "cibadmin and crm_mon)",
}
"""The tools (and the ocf-shellfuncs helpers that only call them) that need a running
Pacemaker. ocf_local_nodename and ocf_attribute_target are not here: without Pacemaker
they fall back to `uname -n`."""
_TOOL = re.compile(r"(?<![\w$/-])(?:\$\{?HA_SBIN_DIR\}?/)?(" + "|".join(PACEMAKER_TOOLS)
                   + r")(?![\w-])")
_GUARD = re.compile(r"ocf_is_ms|ocf_is_clone|have_binary|\bwhich\b|command -v|\|\|")
_BLOCK_GUARD = re.compile(r"ocf_is_ms|ocf_is_clone")
_KEYWORD = re.compile(r"(?<![\w$-])(if|elif|else|fi)(?![\w-])")
_OPTIONAL_FUNCTION = re.compile(r"promot|demot|notify|master|slave|_ms_|clone", re.I)
_FUNCTION = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)\s*\{?\s*$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


@dataclass(frozen=True)
class ToolUse:
    tool: str
    line: int
    function: str | None
    optional: bool

    def describe(self) -> str:
        where = f"line {self.line}" + (f", in {self.function}()" if self.function else "")
        return f"{self.tool} at {where}"


def pacemaker_tool_uses(path: Path) -> list[ToolUse]:
    """Where the agent script calls a Pacemaker-only tool, each marked optional or not.

    The rule (docs/kits.md): comments and here-documents (the meta-data XML, usage text)
    are skipped. A use is optional when its own line guards it (ocf_is_ms, ocf_is_clone,
    a have_binary / which / command -v test, or a `||` fallback), when it is inside the
    then-branch of an `if ocf_is_ms` / `if ocf_is_clone`, or when it sits in a function
    whose name says it serves promotable clones or notifications (promote, demote,
    notify, master, slave, clone). Any other use is required: the agent would fail, or
    silently misbehave, without Pacemaker.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    uses: list[ToolUse] = []
    heredoc_end: str | None = None
    function: str | None = None
    guarded: list[bool] = []  # per open `if`: whether this branch runs only for clones
    for number, raw in enumerate(lines, start=1):
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        code = _strip_comment(raw)
        if (defined := _FUNCTION.match(code)) is not None:
            function = defined.group(1)
        _follow_ifs(code, guarded)
        for match in _TOOL.finditer(code):
            optional = bool(_GUARD.search(code)) or any(guarded) or bool(
                function and _OPTIONAL_FUNCTION.search(function))
            uses.append(ToolUse(match.group(1), number, function, optional))
        if (opened := _HEREDOC.search(code)) is not None:
            heredoc_end = opened.group(1)
    return uses


def _follow_ifs(code: str, guarded: list[bool]) -> None:
    """Update the stack of open `if`s with this line's if / elif / else / fi."""
    for keyword in _KEYWORD.finditer(code):
        word = keyword.group(1)
        if word == "if":
            guarded.append(bool(_BLOCK_GUARD.search(code[keyword.end():])))
        elif guarded and word in ("elif", "else"):
            guarded[-1] = False
        elif guarded and word == "fi":
            guarded.pop()


def _strip_comment(line: str) -> str:
    """The line without a shell comment (a # at its start or after a blank)."""
    stripped = line.lstrip()
    if stripped.startswith("#"):
        return ""
    cut = re.search(r"\s#", line)
    return line[:cut.start()] if cut else line
