"""Serviceguard toolkit packages become resources of tutela's application kits.

A modular package names its toolkit in a module (`module_name tkit/pgsql/pgsql`; HP-UX's
Enterprise Cluster Master Toolkit: `ecmt/mysql/mysql`) and sets the toolkit's attributes
as `tkit/pgsql/pgsql/PGDATA /pgdata`. A legacy package's customer commands call the
toolkit's interface script (`$TKIT_DIR/toolkit.sh start` / `stop`), which reads the same
attributes from its configuration file in that directory (hapgsql.conf, hamysql.conf,
hahttp.conf ...). Either way a recognised toolkit becomes one resource of its kit, after
the package's filesystems and addresses, with its attributes as the kit's parameters;
the toolkit's monitor service becomes the kit's own check. What is not recognised stays
on the generic path (customer commands, services) as before, and the report says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from tutela.kits.registry import get_kit
from tutela.migrate.context import check_params
from tutela.migrate.generic_map import TEMPLATE_LINE, has_commands, package_timeouts
from tutela.migrate.lexer import Function, Value
from tutela.migrate.scope import PackageScope
from tutela.migrate.scripts import GeneratedScript
from tutela.migrate.sgmodel import Group, Note, Outcome, Rule
from tutela.model.config import Resource

TOOLKIT_CALL = re.compile(
    r"""^\s*(?P<quote>["']?)(?P<script>[^\s"']*toolkit\.sh)(?P=quote)\s+(?P<action>start|stop)\s*$""")
MONITOR_COMMAND = re.compile(r"(tkit_module\.sh|toolkit\.sh)\s+\S*monitor", re.IGNORECASE)
ADDRESS_ONLY = re.compile(r"/\d+$")

COMMON: dict[str, Rule] = {
    "tkit_dir": Rule(Outcome.NOTHING, "the toolkit's directory: the kit needs none of the "
                     "toolkit's scripts"),
    "retry_times": Rule(Outcome.NOTHING, "a failed check makes tutela recover the resource "
                        "(restart it) or fail the hierarchy over, as its recovery policy says"),
    "time_out": Rule(Outcome.NOTHING, "every action is bounded by the resource's timeouts "
                     "(the kit's defaults)"),
    "maintenance_flag": Rule(Outcome.MANUAL, "the toolkit's maintenance mode (a debug file "
                             "that pauses its monitor) has no counterpart in the kit",
                             "to work on the server without a failover, take the hierarchy "
                             "out of service or use a maintenance stop (tutela stop "
                             "--leave-resources)"),
    "alert_mail_id": Rule(Outcome.MANUAL, "the toolkit's failure mail is not sent by the kit",
                          "add a mail notification target (docs/notifications.md)"),
}
"""Attributes every ECMT / contributed toolkit has."""


@dataclass(frozen=True)
class Toolkit:
    """One Serviceguard toolkit and the kit it becomes."""

    names: tuple[str, ...]
    """The toolkit's directory names: tkit/NAME/NAME, ecmt/NAME/NAME."""
    kit: str
    config_file: str
    """The legacy toolkit's configuration file in TKIT_DIR."""
    params: dict[str, str]
    """Attribute (lower case) -> the kit parameter it sets, as written."""
    rules: dict[str, Rule] = field(default_factory=dict)
    """Attributes with a fixed outcome."""
    finish: Callable[[dict[str, Any], ToolkitInput], str] | None = None
    """Completes the parameters (derived ones); says which, for the report."""


@dataclass
class ToolkitInput:
    """What a toolkit's parameters are made from besides its attributes."""

    values: dict[str, Value]
    """Attribute (lower case) -> its value (the last, if given again)."""
    exports: list[str]
    """Every XFS value, in order (the NFS toolkit's exports)."""
    address: str | None
    """The package's first relocatable address, which clients use."""
    directories: list[str]
    """The package's mount points."""
    tag: str
    scripts: list[GeneratedScript] = field(default_factory=list)
    scripts_dir: str = ""


def _postgresql(params: dict[str, Any], given: ToolkitInput) -> str:
    home = given.values.get("pghome")
    if home is not None and "bindir" not in params:
        params["bindir"] = f"{home.text.strip().rstrip('/')}/bin"
        return "bindir from PGHOME"
    return ""


def _client_address(params: dict[str, Any], given: ToolkitInput) -> str:
    """The kit's `address` (where it checks the server answers): the package's address."""
    if given.address:
        params["address"] = given.address
        return f"address {given.address} (the package's address)"
    return ""


def _web(params: dict[str, Any], given: ToolkitInput) -> str:
    done = [_first_port(params)]
    root = given.values.get("server_root")
    config = params.get("configfile")
    if root is not None and config and not str(config).startswith("/"):
        params["configfile"] = f"{root.text.strip().rstrip('/')}/{config}"
        done.append("configfile under SERVER_ROOT")
    home = given.values.get("hp_apache_home")
    if home is not None:
        params["httpd"] = f"{home.text.strip().rstrip('/')}/bin/httpd"
        done.append("httpd from HP_APACHE_HOME")
    done.append(_client_address(params, given))
    return ", ".join(d for d in done if d)


def _first_port(params: dict[str, Any]) -> str:
    """MONITOR_PORTS may list several ports ("80 443"): the kit checks the first."""
    ports = str(params.get("port", "")).replace(",", " ").split()
    if len(ports) < 2 or not ports[0].isdigit():
        return ""
    params["port"] = int(ports[0])
    return f"port {ports[0]}, the first of MONITOR_PORTS ({', '.join(ports[1:])} not checked)"


def _probe(port: int, key: str = "probe") -> Callable[[dict[str, Any], ToolkitInput], str]:
    def finish(params: dict[str, Any], given: ToolkitInput) -> str:
        if not given.address:
            return ""
        params[key] = f"{given.address}:{port}"
        return f"{key} {given.address}:{port} (the package's address)"
    return finish


def _nfs(params: dict[str, Any], given: ToolkitInput) -> str:
    """The exports (XFS) become the EXPORT blocks of a Ganesha configuration the importer
    writes; its NFSv4 recovery directory goes on the package's first filesystem."""
    if not given.exports:
        return ""
    name = f"{given.tag}-ganesha.conf"
    given.scripts.append(GeneratedScript(name, ganesha_config(given.exports,
                                                              given.directories), 0o644))
    params["config_file"] = f"{given.scripts_dir}/{name}"
    return _probe(2049)(params, given) or "config_file written"


def ganesha_config(exports: list[str], directories: list[str]) -> str:
    """An NFS-Ganesha configuration with one EXPORT per `exportfs`-style XFS entry
    ("-o OPTIONS CLIENT:/path" or "/path")."""
    lines = ["# Written by tutela migrate serviceguard from the NFS toolkit's XFS entries.",
             "# Review it; copy it to the same path on every node (or onto the shared disk).",
             "# NFSv4 over TCP only, which needs no rpcbind; for NFSv3 clients add 3 to",
             "# Protocols, enable NLM and run rpcbind on every node.",
             "NFS_CORE_PARAM { Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; }"]
    if directories:
        lines.append(f"NFSV4 {{ RecoveryRoot = {directories[0]}/.ganesha-recovery; }}")
    for number, entry in enumerate(exports, 1):
        words = entry.split()
        options = words[words.index("-o") + 1] if "-o" in words[:-1] else "rw"
        client, _, path = words[-1].rpartition(":") if ":" in words[-1] else ("*", "", words[-1])
        access = "RO" if "ro" in options.split(",") else "RW"
        squash = "No_Root_Squash" if "no_root_squash" in options.split(",") else "Root_Squash"
        lines += [f"EXPORT {{  # {entry}", f"    Export_Id = {number};",
                  f"    Path = {path};", f"    Pseudo = {path};", "    Transports = TCP;",
                  "    FSAL { Name = VFS; }", f"    Squash = {squash};",
                  f"    CLIENT {{ Clients = {client or '*'}; Access_Type = {access}; }}", "}"]
    return "\n".join(lines) + "\n"


SAMBA_NOTHING = Rule(Outcome.NOTHING, "set in smb.conf, which the kit's smbd reads")
TOOLKITS = (
    Toolkit(("pgsql", "postgresql", "postgres"), "postgresql", "hapgsql.conf",
            {"pgdata": "datadir", "data_directory": "datadir", "pgport": "port",
             "pguser": "user", "pgadmin": "user", "pgbin": "bindir", "pg_version": "version"},
            {"pghome": Rule(Outcome.MAPPED, "the kit's bindir: PGHOME/bin")},
            _postgresql),
    Toolkit(("mysql", "mariadb"), "mariadb", "hamysql.conf",
            {"data_directory": "datadir", "configuration_file": "config", "pid_file": "pid",
             "socket": "socket", "port": "port"}, {}, _client_address),
    Toolkit(("apache", "httpd", "nginx"), "apache", "hahttp.conf",
            {"configuration_file": "configfile", "config_file": "configfile",
             "httpd_config_file": "configfile", "monitor_ports": "port"},
            {"server_root": Rule(Outcome.MAPPED, "the directory of a relative configfile"),
             "hp_apache_home": Rule(Outcome.MAPPED, "the kit's httpd: HP_APACHE_HOME/bin/httpd"),
             "pid_file": Rule(Outcome.NOTHING, "the kit's agent reads the PidFile of the "
                              "configuration"),
             "ssl": Rule(Outcome.NOTHING, "the configuration's own SSL settings apply")},
            _web),
    Toolkit(("samba", "smb"), "samba", "hasmb.conf",
            {"conf_file": "config_file", "configuration_file": "config_file"},
            {"netbios_name": SAMBA_NOTHING, "log_directory": SAMBA_NOTHING,
             "smbd_pid_file": Rule(Outcome.NOTHING, "smbd runs in the foreground under the "
                                   "process kit, which keeps its own pid file"),
             "nmbd_pid_file": Rule(Outcome.MANUAL, "the samba kit runs smbd only, not nmbd "
                                   "(NetBIOS name service)", "if clients browse by NetBIOS "
                                   "name, run nmbd from a process resource above this one")},
            _probe(445)),
    Toolkit(("nfs",), "nfs", "hanfs.conf", {},
            {"xfs": Rule(Outcome.MAPPED, "an EXPORT block of the Ganesha configuration the "
                         "importer writes", "review the generated Ganesha configuration (of "
                         "the exportfs options only rw / ro and root_squash / no_root_squash "
                         "are carried over) and copy it to every node"),
             "quota_mon": Rule(Outcome.NOTHING, "Ganesha needs no rpc.rquotad monitor"),
             "lock_migration": Rule(Outcome.NOTHING, "Ganesha's NFSv4 recovery directory on "
                                    "the shared filesystem carries the clients' locks over"),
             "supported_netids": Rule(Outcome.NOTHING, "the generated configuration serves "
                                      "NFSv4 over TCP (its comment says how to add NFSv3)")},
            _nfs),
    Toolkit(("postfix",), "postfix", "hapostfix.conf",
            {"config_dir": "config_dir", "postfix_config_dir": "config_dir",
             "binary": "binary"}, {}, _probe(25, "smtp_probe")),
)
SENDMAIL_STEP = ("if the mail server is Postfix (or moves to it), create a postfix resource "
                 "(config_dir: its configuration directory, queue on the shared filesystem); "
                 "for sendmail itself, a process resource running sendmail -bD -q15m")
NOT_A_KIT = {
    "sendmail": ("the sendmail toolkit runs sendmail: tutela's mail kit is postfix",
                 SENDMAIL_STEP),
    "oracle": ("tutela has no Oracle kit", "protect the database with a process or generic "
               "resource (start/stop the instance and listener)"),
}


def toolkit_named(name: str) -> Toolkit | None:
    """The toolkit whose directory name is `name` (pgsql, mysql, apache ...)."""
    return next((t for t in TOOLKITS if name.lower() in t.names), None)


def toolkit_of_file(file_name: str) -> Toolkit | None:
    """The toolkit whose legacy configuration file is named `file_name`."""
    return next((t for t in TOOLKITS if t.config_file == file_name.lower()), None)


def _module_name(text: str) -> str:
    """'pgsql' of tkit/pgsql/pgsql or ecmt/pgsql/pgsql (or of an attribute below them)."""
    parts = [p for p in text.strip().lower().split("/") if p]
    return parts[1] if len(parts) > 1 and parts[0] in ("tkit", "ecmt") else (
        parts[0] if parts else text)


@dataclass(frozen=True)
class Made:
    """A toolkit's resource as made, before it is accepted (problem empty) or dropped."""

    toolkit: Toolkit
    kit: str
    params: dict[str, Any]
    scripts: list[GeneratedScript]
    derived: str
    """The parameters made from more than one attribute, for the report."""
    problem: str


class ToolkitMapper:
    """The toolkits of one package: a resource each, every toolkit line recorded."""

    def __init__(self, scope: PackageScope) -> None:
        self.scope = scope
        self.scripts: list[GeneratedScript] = []
        self.tag = ""

    def resources(self) -> list[Resource]:
        package = self.scope.package
        if package.kind == "legacy":
            return self.legacy()
        modules = [v for v in package.toolkit if v.key == "module_name"]
        attributes = [v for v in package.toolkit if v.key != "module_name"]
        if not modules and not attributes:
            return self.environment()
        names = dict.fromkeys(_module_name(v.text if v.key == "module_name" else v.key)
                              for v in package.toolkit)
        resources = []
        for name in names:  # in the order the package lists them, as Serviceguard ran them
            listed = [m for m in modules if _module_name(m.text) == name]
            values = [(v.key.rsplit("/", 1)[-1], v) for v in attributes
                      if _module_name(v.key) == name]
            origin = f"module {listed[0].text.strip()}" if listed else f"attributes {name}"
            for again in listed[1:]:
                self.scope.record(again, Outcome.NOTHING, "the toolkit module listed again")
            resources += self.build(name, origin, listed[:1], values)
        return resources

    # --- legacy: customer commands that call toolkit.sh -----------------------------------

    def legacy(self) -> list[Resource]:
        package = self.scope.package
        calls = {f.name: _toolkit_calls(f) for f in package.functions}
        run = next((f for f in package.functions if f.name.endswith("_run_cmds")), None)
        run_calls = calls[run.name][0] if run is not None else []
        if not run_calls:
            self._toolkit_file_unused()
            return []
        call = run_calls[0]
        script = self.scope.expand(call, "the toolkit call")
        directory = str(PurePosixPath(script).parent)
        toolkit = (toolkit_of_file(package.toolkit_file.rsplit("/", 1)[-1])
                   if package.toolkit_file else None) or next(
            (t for t in TOOLKITS if any(n in directory.lower().split("/") for n in t.names)),
            None)
        more = any(has_commands(f) and not only for f in package.functions
                   for _, only in [calls[f.name]])
        if toolkit is None or more or not package.toolkit_file:
            why = ("the customer commands do more than call the toolkit" if more else
                   f"no known toolkit in {directory}" if toolkit is None else
                   f"its configuration file ({toolkit.config_file} in {directory}) is not "
                   "among the inputs: give it to the import too")
            self.scope.ctx.ledger.section(self.scope.section, f"Toolkit call `{call}` not "
                                          f"mapped to a kit: {why}; the customer commands "
                                          "stay a generic resource.")
            self._toolkit_file_unused()
            return []
        values = [(v.key, v) for v in package.toolkit]
        resources = self.build(toolkit.names[0], f"control script calling {call}", [], values)
        if resources:
            self._claim_functions([f for f in package.functions if calls[f.name][0]])
        return resources

    def _claim_functions(self, functions: list[Function]) -> None:
        for function in functions:
            action = "restore" if function.name.endswith("_run_cmds") else "remove"
            self.scope.note(Note(function.loc, f"function {function.name}", Outcome.MAPPED,
                                 f"calls the toolkit: the {action} of resources[{self.tag}]"))
            self.scope.package.functions.remove(function)

    def _toolkit_file_unused(self) -> None:
        self.scope.record_all(self.scope.package.toolkit, Outcome.MANUAL, "the toolkit is "
                              "not mapped to a kit, so its settings are not used", "carry "
                              "them over by hand (into the generic resource's scripts or the "
                              "server's own configuration) where they matter")

    # --- both -----------------------------------------------------------------------------

    def build(self, name: str, origin: str, modules: list[Value],
              values: list[tuple[str, Value]]) -> list[Resource]:
        toolkit = toolkit_named(name)
        if toolkit is None:
            self.not_mapped(name, modules, values)
            return []
        made = self.make(toolkit, _kit_of(toolkit, name, values), values)
        if made.problem:
            self.not_valid(toolkit, made.kit, made.problem, modules, values)
            return []
        return self.accept(made, origin, modules, values)

    def make(self, toolkit: Toolkit, kit: str, values: list[tuple[str, Value]]) -> Made:
        """The kit's parameters from the attributes; on a problem, nothing is kept."""
        self.tag = self.scope.ctx.tag(self.scope.base, kit)
        params: dict[str, Any] = {}
        for key, value in values:
            target = toolkit.params.get(key)
            if target is not None and value.text.strip():
                text = value.text.strip()
                params[target] = int(text) if text.isdigit() else text
        given = ToolkitInput(values=dict(values),
                             exports=[v.text.strip() for k, v in values if k == "xfs"
                                      and v.text.strip()],
                             address=self.address(), directories=self.directories(),
                             tag=self.tag, scripts_dir=str(self.scope.ctx.scripts_dir))
        derived = toolkit.finish(params, given) if toolkit.finish else ""
        problem = check_params(kit, params)
        if problem:
            self.scope.ctx.tags.discard(self.tag)
        return Made(toolkit, kit, params, given.scripts, derived, problem)

    def accept(self, made: Made, origin: str, modules: list[Value],
               values: list[tuple[str, Value]]) -> list[Resource]:
        self.scripts += made.scripts
        self.record(made.toolkit, made.kit, origin, modules, values, made.derived)
        self.claim_monitor_services()
        interval = _interval(values)
        return [Resource(tag=self.tag, kit=made.kit, params=made.params,
                         timeouts=self.timeouts(made.kit),
                         **({"check_interval": interval} if interval else {}))]

    def timeouts(self, kit: str) -> dict[str, float]:
        """run_script_timeout where longer than the kit's restore timeout: the toolkit's
        start had that long (a database's crash recovery, say); recover (a remove and a
        restore) gets as much more. halt_script_timeout is not taken: a longer remove would
        only delay a forced removal on quorum loss when a stop hangs."""
        defaults = get_kit(kit).default_timeouts
        seconds = package_timeouts(self.scope.package).get("restore")
        if seconds is None or seconds <= defaults["restore"]:
            return {}
        return {"restore": seconds, "recover": seconds + defaults["remove"]}

    # --- modular without a toolkit: an external_script and pev_ parameters ----------------

    def environment(self) -> list[Resource]:
        """An external_script named after a server (pgsql_ctl.sh, httpd.sh ...) whose
        settings come in pev_ parameters the kit knows (pev_PGDATA ...): the kit in the
        script's place. Anything less stays an external script, as before."""
        package = self.scope.package
        for script in (v for v in package.scripts if v.key == "external_script"):
            stem = PurePosixPath(script.text.strip()).name.lower()
            toolkit = next((t for t in TOOLKITS if any(n in stem for n in t.names)), None)
            if toolkit is None:
                continue
            values = [(v.key.removeprefix("pev_"), v) for v in package.environment]
            if not any(k in toolkit.params for k, _ in values):
                continue
            made = self.make(toolkit, _kit_of(toolkit, stem, values), values)
            if made.problem:
                continue
            self.scope.record(script, Outcome.MAPPED, f"recognised as the {made.kit} server's "
                              f"start and stop by its name and pev_ parameters: "
                              f"resources[{self.tag}] ({made.kit} kit) in its place",
                              "check that the script did no more than start and stop the "
                              "server; put anything else in a generic resource")
            package.scripts.remove(script)
            package.environment.clear()
            return self.accept(made, f"external_script {script.text.strip()} with pev_ "
                               "parameters", [], values)
        return []

    def record(self, toolkit: Toolkit, kit: str, origin: str, modules: list[Value],
               values: list[tuple[str, Value]], derived: str) -> None:
        where = f"resources[{self.tag}]"
        for module in modules:
            self.scope.record(module, Outcome.MAPPED, f"toolkit recognised: {where} ({kit} "
                              "kit)")
        for key, value in sorted(values, key=lambda kv: kv[1].loc.line):
            target = toolkit.params.get(key)
            rule = toolkit.rules.get(key) or COMMON.get(key)
            if target is not None and value.text.strip():
                self.scope.record(value, Outcome.MAPPED, f"{where}.params.{target}")
            elif key == "monitor_interval":
                self.record_interval(value, where)
            elif rule is not None:
                self.scope.note(rule.apply(value))
            elif not value.text.strip():
                self.scope.record(value, Outcome.NOTHING, "empty: the kit's default applies")
            else:
                self.scope.record(value, Outcome.MANUAL, f"the {kit} kit has no such "
                                  "parameter", "check whether it matters; set it in the "
                                  "server's own configuration if it does")
        extra = f"; derived: {derived}" if derived else ""
        self.scope.ctx.ledger.section(self.scope.section, f"Toolkit ({origin}) → `{self.tag}` "
                                      f"of the {kit} kit{extra}.")

    def record_interval(self, value: Value, where: str) -> None:
        seconds = _seconds(value.text)
        if seconds is None:
            self.scope.record(value, Outcome.ERROR, f"{value.text!r} is not a number of "
                              "seconds; the kit's check runs every 5 s", "correct it")
        else:
            self.scope.record(value, Outcome.MAPPED, f"{where}.check_interval: {seconds:g} s "
                              "(the kit's quick_check does what the toolkit's monitor did)")

    def not_mapped(self, name: str, modules: list[Value],
                   values: list[tuple[str, Value]]) -> None:
        detail, step = NOT_A_KIT.get(name, (f"toolkit {name!r}: tutela has no such kit",
                                            "reproduce what the toolkit did with a process "
                                            "or generic resource"))
        self.scope.record_all([*modules, *(v for _, v in values)], Outcome.MANUAL, detail,
                              step)

    def not_valid(self, toolkit: Toolkit, kit: str, problem: str, modules: list[Value],
                  values: list[tuple[str, Value]]) -> None:
        wanted = sorted({k.upper() for k, target in toolkit.params.items()
                         if f"params.{target}:" in problem}) or ["XFS"]
        self.scope.record_all([*modules, *(v for _, v in values)], Outcome.MANUAL,
                              f"toolkit of the {kit} kit, but its attributes do not make a "
                              f"valid resource ({problem})", f"set {' or '.join(wanted)} and "
                              f"run the import again, or create the {kit} resource by hand")

    def address(self) -> str | None:
        for group in self.scope.package.ips:
            text = group.text("ip_address").strip()
            if text:
                return ADDRESS_ONLY.sub("", text)
        return None

    def directories(self) -> list[str]:
        return [g.text("fs_directory").strip() for g in self.scope.package.filesystems
                if g.text("fs_directory").strip()]

    def claim_monitor_services(self) -> None:
        """The toolkit's monitor service (tkit_module.sh ..._monitor, toolkit.sh monitor)
        is what the kit's quick_check does: no process resource for it."""
        package = self.scope.package
        for group in [g for g in package.services if _is_monitor(g)]:
            self.scope.record_all(list(group.values.values()), Outcome.MAPPED,
                                  f"the toolkit's monitor: resources[{self.tag}]'s "
                                  "quick_check does its job")
            package.services.remove(group)


def _seconds(text: str) -> float | None:
    text = text.strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def _interval(values: list[tuple[str, Value]]) -> float | None:
    """MONITOR_INTERVAL, the seconds between the toolkit monitor's checks, if valid."""
    found = [_seconds(v.text) for k, v in values if k == "monitor_interval"]
    return found[-1] if found else None


def _kit_of(toolkit: Toolkit, name: str, values: list[tuple[str, Value]]) -> str:
    """The toolkit's kit; nginx for an Apache toolkit (or script) that is nginx's by name
    or configuration (the toolkit started whatever server its configuration names)."""
    if toolkit.kit == "apache" and any("nginx" in text.lower() for text in
                                       [name, *(v.text for _, v in values)]):
        return "nginx"
    return toolkit.kit


def _is_monitor(group: Group) -> bool:
    return bool(MONITOR_COMMAND.search(group.text("service_cmd")))


def _toolkit_calls(function: Function) -> tuple[list[str], bool]:
    """The toolkit scripts a customer_defined_* body calls, and whether that is all it
    does (besides the template's `:` and test_return lines)."""
    calls, only = [], True
    for line in function.body.split("\n"):
        match = TOOLKIT_CALL.match(line)
        if match:
            calls.append(match["script"])
        elif not TEMPLATE_LINE.match(line):
            only = False
    return calls, only
