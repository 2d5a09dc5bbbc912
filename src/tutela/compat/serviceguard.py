"""Serviceguard's commands over tutela's operations: a package is a hierarchy (its root's
tag is the package name), global switching (AUTO_RUN) is the hierarchy's `failover`, node
switching is whether a node is in its equivalencies. docs/compat.md lists each command's
options, mapping, output and exit codes, and where they differ from Serviceguard's."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import click

from tutela.cli import main as tutela
from tutela.cli.client import call, is_running, runs_on
from tutela.compat.entry import (
    CONTEXT,
    entry_point,
    fail,
    failures_exit_1,
    node_state,
    set_failover,
    snapshot,
)
from tutela.compat.view import (
    ClusterView,
    Package,
    cluster_view,
    cmviewcl_line,
    cmviewcl_table,
)

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the packages and nodes as JSON (tutela's addition).")


def current_view() -> ClusterView:
    return cluster_view(*snapshot())


def known_package(view: ClusterView, name: str) -> Package:
    """The package `name`, or exit 1 naming the packages there are."""
    package = view.package(name)
    if package is None:
        known = ", ".join(p.name for p in view.packages) or "none"
        fail(f"Unable to find package {name} in cluster {view.name} (its packages: "
             f"{known}); a package is a hierarchy, named by its root's tag")
    return package


@click.command("cmviewcl", cls=tutela.JsonErrorsCommand, context_settings=CONTEXT)
@click.option("-v", "verbose", is_flag=True,
              help="Also each package's policies and the nodes it may run on.")
@click.option("-f", "output_format", type=click.Choice(["table", "line"]), default="table",
              show_default=True, help="table for people, line (attribute=value) for scripts.")
@click.option("-l", "level", type=click.Choice(["package", "node"]),
              help="Only the packages, or only the nodes.")
@click.option("-p", "packages", multiple=True, metavar="PKG", help="Only this package.")
@click.option("-n", "nodes", multiple=True, metavar="NODE", help="Only this node.")
@json_option
@failures_exit_1
def cmviewcl(verbose: bool, output_format: str, level: str | None,
             packages: tuple[str, ...], nodes: tuple[str, ...], as_json: bool) -> None:
    """Show the cluster, its nodes and packages (hierarchies) as Serviceguard's cmviewcl.

    An unknown package or node exits 1. The same as 'tutela status', in Serviceguard's
    words: docs/compat.md."""
    view = current_view()
    for name in packages:
        known_package(view, name)
    for name in nodes:
        if view.node(name) is None:
            fail(f"Unable to find node {name} in cluster {view.name} (its nodes: "
                 f"{', '.join(n.name for n in view.nodes)})")
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(view), indent=2))
        return
    show = cmviewcl_line if output_format == "line" else cmviewcl_table
    click.echo(show(view, verbose, level, nodes, packages), nl=False)


@click.command("cmruncl", context_settings=CONTEXT)
@failures_exit_1
@click.pass_context
def cmruncl(ctx: click.Context) -> None:
    """Start the cluster on this node: 'tutela start', which returns once this node and
    its peers hear each other. tutela starts only the node it runs on: run cmruncl (or
    cmrunnode) on every node. Packages come back where they ran, if their switching is
    enabled."""
    ctx.invoke(tutela.start)


@click.command("cmhaltcl", context_settings=CONTEXT)
@click.option("-f", "force", is_flag=True, help="Halt the running packages first.")
@failures_exit_1
@click.pass_context
def cmhaltcl(ctx: click.Context, force: bool) -> None:
    """Halt the cluster on this node: with -f every running package first ('tutela remove'
    of each; their switching is left as it is), then 'tutela stop'. Refused while a
    package runs, without -f. tutela stops only the node it runs on: run cmhaltcl (or
    cmhaltnode) on every other node too."""
    view = current_view()
    running = [p for p in view.packages if p.owner is not None]
    if running and not force:
        fail(f"cmhaltcl: {_where(running)}: halt them first (cmhaltpkg PKG), or add -f to "
             "halt them with the cluster")
    for package in running:
        ctx.invoke(tutela.remove, tag=package.name, on=_remote_owner(view, package))
    ctx.invoke(tutela.stop)
    others = [n.name for n in view.nodes if n.name != view.local and n.status == "up"]
    if others:
        click.echo(f"this node is halted; run cmhaltcl (or tutela stop) on {', '.join(others)}"
                   " as well")


@click.command("cmrunnode", context_settings=CONTEXT)
@click.argument("node", required=False)
@failures_exit_1
@click.pass_context
def cmrunnode(ctx: click.Context, node: str | None) -> None:
    """Start this node: 'tutela start' (NODE, if given, must be this node)."""
    _refuse_other_node("cmrunnode", node, "tutela start")
    ctx.invoke(tutela.start)


@click.command("cmhaltnode", context_settings=CONTEXT)
@click.option("-f", "force", is_flag=True,
              help="Halt even if packages run here: they move to another node if they may.")
@click.argument("node", required=False)
@failures_exit_1
@click.pass_context
def cmhaltnode(ctx: click.Context, force: bool, node: str | None) -> None:
    """Halt this node: 'tutela stop' (NODE, if given, must be this node). Refused while a
    package runs here, without -f; with -f its packages are halted here and the other
    nodes take them over as after a failure (global switching is not changed)."""
    _refuse_other_node("cmhaltnode", node, "tutela stop")
    if not force and is_running(node_state()):
        view = current_view()
        here = [p for p in view.packages if p.owner == view.local]
        if here:
            fail(f"cmhaltnode: {_where(here)}: halt them first (cmhaltpkg PKG), or add -f "
                 "to halt them here and let another node take them over")
    ctx.invoke(tutela.stop)


@click.command("cmrunpkg", context_settings=CONTEXT)
@click.option("-n", "node", metavar="NODE", help="Run it there (default: this node).")
@click.argument("package")
@failures_exit_1
@click.pass_context
def cmrunpkg(ctx: click.Context, node: str | None, package: str) -> None:
    """Run the halted PACKAGE on NODE (default: this node). NODE must be one of the nodes
    the package may run on; the package's global switching (AUTO_RUN) is left as it is:
    'cmmodpkg -e PKG' enables it."""
    view = current_view()
    found = known_package(view, package)
    target = node or view.local
    if found.owner is not None:
        fail(f"Package {package} is already running on node {found.owner}: halt it first "
             f"(cmhaltpkg {package}), or move it with tutela switchover {package} --to "
             f"{target}")
    eligible = [n.name for n in found.nodes]
    if target not in eligible:
        fail(f"Unable to run package {package} on node {target}: node {target} is not "
             f"configured to run it (its nodes: {', '.join(eligible)}); enable it with "
             f"cmmodpkg -e -n {target} {package} (tutela hierarchy extend)")
    if target != view.local and next(n for n in found.nodes if n.name == target
                                     ).status != "up":
        fail(f"Unable to run package {package} on node {target}: node {target} is not up")
    bring_to(ctx, package, target, eligible)


def bring_to(ctx: click.Context, tag: str, node: str, eligible: Sequence[str]) -> None:
    """TAG in service on NODE if NODE may run it: `tutela restore TAG --on NODE` (started
    there, not where the priorities would put it), or `tutela switchover TAG --to NODE`
    when it runs elsewhere; else `tutela restore TAG` (where the cluster's rules say)."""
    if node not in eligible:
        ctx.invoke(tutela.restore, tag=tag)
        return
    where = runs_on(call(node_state(), "status"), tag)
    if where is None:
        ctx.invoke(tutela.restore, tag=tag, on=node)
    elif where != node:
        ctx.invoke(tutela.switchover, tag=tag, to=node)


@click.command("cmhaltpkg", context_settings=CONTEXT)
@click.argument("package")
@failures_exit_1
@click.pass_context
def cmhaltpkg(ctx: click.Context, package: str) -> None:
    """Halt PACKAGE where it runs, and disable its global switching (AUTO_RUN), as
    Serviceguard does: its hierarchy's failover is set to false first, then 'tutela
    remove'. 'cmrunpkg' runs it again, 'cmmodpkg -e' enables its switching (and runs it)."""
    view = current_view()
    found = known_package(view, package)
    if found.owner is None:
        fail(f"Package {package} is not running on any node: nothing to halt")
    if _has_settings(package):
        set_failover(package, False)
    ctx.invoke(tutela.remove, tag=package, on=_remote_owner(view, found))
    click.echo(f"global switching (AUTO_RUN) of {package} disabled")


@click.command("cmmodpkg", context_settings=CONTEXT)
@click.option("-e", "enable", flag_value=True, default=None, help="Enable switching.")
@click.option("-d", "enable", flag_value=False, help="Disable switching.")
@click.option("-n", "node", metavar="NODE",
              help="Node switching: whether NODE may run the package (its equivalencies).")
@click.argument("package")
@failures_exit_1
@click.pass_context
def cmmodpkg(ctx: click.Context, enable: bool | None, node: str | None, package: str) -> None:
    """Enable (-e) or disable (-d) PACKAGE's switching.

    Without -n, global switching (AUTO_RUN): the hierarchy's failover setting; -e also
    runs a halted package on its first eligible node, as Serviceguard does. With -n NODE,
    node switching: -e lets NODE run it (tutela hierarchy extend, after the others by
    priority), -d no longer ('tutela hierarchy unextend', refused while it runs there)."""
    if enable is None:
        raise click.UsageError("give -e (enable) or -d (disable)")
    view = current_view()
    found = known_package(view, package)
    if node is not None:
        _node_switching(ctx, found, node, enable)
        return
    if not _has_settings(package):
        fail(f"{package} runs on one node only (its hierarchy has no equivalencies), so it "
             f"has no switching: let another node run it first: cmmodpkg -e -n NODE {package}")
    set_failover(package, enable)
    click.echo(f"global switching (AUTO_RUN) of {package} {'en' if enable else 'dis'}abled")
    if enable and found.owner is None:
        ctx.invoke(tutela.restore, tag=package)


def _node_switching(ctx: click.Context, package: Package, node: str, enable: bool) -> None:
    listed = node in {n.name for n in package.nodes}
    if enable and not listed:
        ctx.invoke(tutela.hierarchy_extend, tag=package.name, to=node)
    elif not enable and listed:
        ctx.invoke(tutela.hierarchy_unextend, tag=package.name, node=node)
    else:
        click.echo(f"node switching of {package.name} on {node} is "
                   f"{'en' if enable else 'dis'}abled already")


def _has_settings(root: str) -> bool:
    """Whether the hierarchy has settings of its own (`hierarchies:` in the configuration),
    which a hierarchy never extended does not need."""
    _, config = snapshot()
    return any(h.root == root for h in config.hierarchies)


def _where(packages: Sequence[Package]) -> str:
    return "running: " + ", ".join(f"{p.name} on {p.owner}" for p in packages)


def _remote_owner(view: ClusterView, package: Package) -> str | None:
    """`--on` for tutela remove: the node that runs a hierarchy never extended (a clustered
    one is taken out wherever it runs)."""
    return package.owner if package.owner != view.local else None


def _refuse_other_node(command: str, node: str | None, tutela_command: str) -> None:
    if node is None:
        return
    local = _local_name()
    if node != local:
        fail(f"{command} {node}: tutela acts only on the node it runs on ({local}): run "
             f"{command} (or {tutela_command}) on {node}")


def _local_name() -> str:
    """This node's name, from its configuration database (tutelad may be stopped)."""
    from tutela.lcd.store import Lcd, NotInitialised

    try:
        lcd = Lcd.open(node_state())
    except NotInitialised as error:
        fail(str(error))
    try:
        return lcd.node
    finally:
        lcd.close()


main_cmviewcl = entry_point(cmviewcl, "cmviewcl")
main_cmruncl = entry_point(cmruncl, "cmruncl")
main_cmhaltcl = entry_point(cmhaltcl, "cmhaltcl")
main_cmrunnode = entry_point(cmrunnode, "cmrunnode")
main_cmhaltnode = entry_point(cmhaltnode, "cmhaltnode")
main_cmrunpkg = entry_point(cmrunpkg, "cmrunpkg")
main_cmhaltpkg = entry_point(cmhaltpkg, "cmhaltpkg")
main_cmmodpkg = entry_point(cmmodpkg, "cmmodpkg")
