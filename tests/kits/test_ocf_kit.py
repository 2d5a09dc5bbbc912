"""The ocf kit against the real agents of Debian's resource-agents package: meta-data,
parameters, the environment, probes and exit codes. No agent is mocked.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_until
from tutela.kits.base import ActionContext
from tutela.kits.ocf import (
    CHECK_LEVEL,
    OcfError,
    OcfKit,
    Recovery,
    agent_env,
    exit_code,
    kit_for,
    rsctmp,
)
from tutela.kits.ocf_agents import (
    AgentError,
    AgentName,
    all_meta_data,
    installed,
    meta_data,
    pacemaker_tool_uses,
    parse_duration,
    parse_name,
)
from tutela.kits.registry import get_kit
from tutela.model.errors import ConfigError

Make = Callable[..., ActionContext[Any]]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """ActionContexts for OCF kits; removes the HA_RSCTMP directories they used."""
    used: list[Path] = []

    def build(kit: str, params: dict[str, Any], timeout: float = 30.0) -> ActionContext[Any]:
        state_dir = tmp_path / "node" / "resources" / "res1"
        used.append(rsctmp(state_dir))
        return ActionContext(tag="res1", resource_id=f"{kit}.res1",
                             params=get_kit(kit).parse_params(params), state_dir=state_dir,
                             timeout=timeout, log=logging.getLogger("tests.ocf"))
    yield build
    for directory in used:
        shutil.rmtree(directory, ignore_errors=True)


def ocf(name: str) -> OcfKit:
    kit = get_kit(name)
    assert isinstance(kit, OcfKit)
    return kit


# --- meta-data ----------------------------------------------------------------------------

def test_every_installed_agent_has_meta_data_we_read() -> None:
    names = installed()
    assert len(names) > 100, "resource-agents is not installed (make install-deps)"
    unreadable = {name.kit: str(meta) for name, meta in all_meta_data(names)
                  if isinstance(meta, AgentError)}
    assert unreadable == {}


def test_ipaddr2_parameters_types_and_timeouts_come_from_its_meta_data() -> None:
    meta = meta_data(parse_name("ocf:heartbeat:IPaddr2"))
    ip, arp_count, lvs = (meta.parameter(n) for n in ("ip", "arp_count", "lvs_support"))
    assert ip is not None and ip.required and ip.type == "string"
    assert arp_count is not None and (arp_count.type, arp_count.default) == ("integer", "5")
    assert lvs is not None and (lvs.type, lvs.required) == ("boolean", False)
    assert meta.shortdesc.startswith("Manages virtual IPv4 and IPv6 addresses")
    assert (meta.action_timeout("start"), meta.monitor_interval(), meta.check_levels()) \
        == (20.0, 10.0, [0])
    # restore = probe (monitor) + validate-all + start; recover = stop + start
    assert ocf("ocf:heartbeat:IPaddr2").default_timeouts == {
        "restore": 60.0, "remove": 20.0, "quick_check": 20.0, "recover": 40.0}


def test_durations_as_agents_write_them() -> None:
    assert [parse_duration(t) for t in ("20s", "20", "2min", "500ms", "1h", "soon", None)] \
        == [20.0, 20.0, 120.0, 0.5, 3600.0, None, None]


def test_meta_data_is_read_again_when_the_agent_changes(tmp_path: Path, own_dummy: Path
                                                         ) -> None:
    """One run per path and modification time, in memory and on disk."""
    agent = own_dummy
    name = AgentName("test", "Dummy")
    first = meta_data(name)
    assert meta_data(name) is first
    assert len(list((tmp_path / "cache" / "tutela" / "ocf-meta-data").iterdir())) == 1
    agent.write_text(agent.read_text().replace("Example stateless resource agent",
                                               "Changed description"))
    changed = meta_data(name)
    assert changed is not first and changed.shortdesc == "Changed description"
    assert len(list((tmp_path / "cache" / "tutela" / "ocf-meta-data").iterdir())) == 1


def test_agent_names_that_name_nothing_are_refused_with_the_way_to_write_them() -> None:
    for bad in ("ocf:heartbeat", "ocf::Dummy", "lsb:heartbeat:Dummy", "ocf:../x:Dummy"):
        with pytest.raises(AgentError, match="write ocf:PROVIDER:AGENT"):
            parse_name(bad)
    with pytest.raises(ConfigError, match=r"no agent /usr/lib/ocf/resource\.d/heartbeat/Nope"):
        get_kit("ocf:heartbeat:Nope", "resources[x].kit")


# --- parameters ---------------------------------------------------------------------------

def test_bad_parameters_are_named_with_their_fix() -> None:
    with pytest.raises(ConfigError) as error:
        ocf("ocf:heartbeat:IPaddr2").parse_params(
            {"ip": "198.51.100.5", "netmask": "24", "arp_count": "five",
             "lvs_support": "maybe", CHECK_LEVEL: "10"}, "resources[vip].params")
    problems = {p.field.removeprefix("resources[vip].params."): p for p in error.value.problems}
    assert sorted(problems) == sorted(["netmask", "arp_count", "lvs_support", CHECK_LEVEL])
    assert "has no parameter 'netmask'" in problems["netmask"].message
    assert "cidr_netmask" in problems["netmask"].fix and "ip, nic" in problems["netmask"].fix
    assert problems["arp_count"].message == "must be an integer, e.g. 5"
    assert "must be a boolean" in problems["lvs_support"].message
    assert "advertises: 0" in problems[CHECK_LEVEL].message
    assert all("tutela kit show ocf:heartbeat:IPaddr2" in p.fix
               for name, p in problems.items() if name != "netmask")


def test_a_missing_required_parameter_is_named() -> None:
    with pytest.raises(ConfigError) as error:
        ocf("ocf:heartbeat:IPaddr2").parse_params({}, "resources[vip].params")
    [problem] = error.value.problems
    assert problem.field == "resources[vip].params.ip"
    assert "requires it (IPv4 or IPv6 address)" in problem.message
    assert problem.fix.startswith("give it, e.g. --param ip=VALUE")


def test_values_reach_the_agent_as_strings_and_only_those_given() -> None:
    params = ocf("ocf:heartbeat:IPaddr2").parse_params(
        {"ip": "198.51.100.5", "cidr_netmask": 24, "lvs_support": True, "arp_count": " 3 "})
    assert params.values == {"ip": "198.51.100.5", "cidr_netmask": "24",
                             "lvs_support": "true", "arp_count": "3"}
    assert params.check_level is None


def test_agents_that_need_pacemaker_are_refused_naming_tool_and_line() -> None:
    with pytest.raises(ConfigError) as error:
        ocf("ocf:heartbeat:SysInfo").parse_params({}, "resources[info].params")
    [problem] = error.value.problems
    assert problem.field == "resources[info].kit"
    assert problem.message.startswith(
        "not supported: ocf:heartbeat:SysInfo uses Pacemaker's attribute daemon "
        "(attrd_updater), which only Pacemaker has (attrd_updater at line ")


def test_pacemaker_tools_in_optional_paths_only_do_not_refuse_the_agent() -> None:
    """mysql sets promotion scores only for promotable clones (ocf_is_ms guards them)."""
    uses = pacemaker_tool_uses(parse_name("ocf:heartbeat:mysql").path)
    assert uses and all(use.optional for use in uses)
    assert {use.tool for use in uses} == {"ocf_promotion_score"}
    ocf("ocf:heartbeat:mysql").parse_params({})
    for plain in ("Dummy", "IPaddr2", "Filesystem", "nginx", "apache", "anything"):
        assert pacemaker_tool_uses(parse_name(f"ocf:heartbeat:{plain}").path) == []


# --- environment ----------------------------------------------------------------------------

def test_the_environment_is_pacemakers(make: Make) -> None:
    ctx = make("ocf:heartbeat:Dummy", {"fake": "x", CHECK_LEVEL: 0})
    kit = ocf("ocf:heartbeat:Dummy")
    env = agent_env(kit.agent, ctx, "monitor", 10.0, 19.5)
    ours = {k: v for k, v in env.items() if k.startswith(("OCF_", "HA_RSCTMP"))}
    assert ours == {
        "OCF_ROOT": "/usr/lib/ocf", "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": "res1", "OCF_RESOURCE_TYPE": "Dummy",
        "OCF_RESOURCE_PROVIDER": "heartbeat", "OCF_EXIT_REASON_PREFIX": "ocf-exit-reason:",
        "OCF_RESKEY_CRM_meta_name": "monitor", "OCF_RESKEY_CRM_meta_timeout": "19500",
        "OCF_RESKEY_CRM_meta_interval": "10000", "OCF_RESKEY_fake": "x",
        "OCF_CHECK_LEVEL": "0", "HA_RSCTMP": str(rsctmp(ctx.state_dir))}
    assert "OCF_CHECK_LEVEL" not in agent_env(kit.agent, ctx, "start", 0.0, 20.0)
    assert str(rsctmp(ctx.state_dir)).startswith("/run/tutela/ocf/")


def test_dummy_finds_its_state_where_pacemaker_would_put_it(make: Make) -> None:
    """Dummy keeps its state in ${HA_RSCTMP}/Dummy-${OCF_RESOURCE_INSTANCE}.state, and
    says why it is not running only on a recurring monitor, not on a probe (interval 0)."""
    kit, ctx = ocf("ocf:heartbeat:Dummy"), make("ocf:heartbeat:Dummy", {})
    state = rsctmp(ctx.state_dir) / "Dummy-res1.state"
    check = kit.quick_check(ctx)
    assert not check.healthy
    assert check.reason == ("monitor exited 7 (OCF_NOT_RUNNING, not running): No process "
                            "state file found")
    kit.restore(ctx)
    assert state.exists() and kit.quick_check(ctx).healthy
    kit.restore(ctx)  # the probe finds it running: nothing done
    kit.remove(ctx)
    kit.remove(ctx)  # idempotent
    assert not state.exists() and not kit.quick_check(ctx).healthy


# --- exit codes ---------------------------------------------------------------------------

def test_exit_codes_have_pacemakers_recovery_classes() -> None:
    classes = {code: exit_code(code).recovery for code in range(10)}
    assert classes == {0: None, 1: Recovery.SOFT, 2: Recovery.HARD, 3: Recovery.HARD,
                       4: Recovery.HARD, 5: Recovery.HARD, 6: Recovery.FATAL,
                       7: Recovery.SOFT, 8: Recovery.HARD, 9: Recovery.HARD}
    assert exit_code(42).recovery is Recovery.SOFT and exit_code(42).name == "exit 42"


def test_err_configured_from_validate_all_is_fatal(make: Make) -> None:
    kit = ocf("ocf:heartbeat:IPaddr2")
    with pytest.raises(OcfError) as error:
        kit.restore(make("ocf:heartbeat:IPaddr2", {"ip": "198.51.100.300"}))
    assert error.value.recovery is Recovery.FATAL
    assert str(error.value).startswith(
        "validate-all exited 6 (OCF_ERR_CONFIGURED, the parameters are invalid (on every "
        "node)): [findif] failed; a fatal error")


@pytest.mark.parametrize(("kit", "params", "expected"), [
    ("ocf:heartbeat:Dummy", {"state": "/nonexistent/dir/x.state"},
     'validate-all exited 2 (OCF_ERR_ARGS, the parameters are not valid on this node): '
     'State file "/nonexistent/dir/x.state" is not writable'),
    ("ocf:heartbeat:Filesystem", {"device": "/dev/tutela-none", "directory": "/mnt/none",
                                  "fstype": "ext4"},
     "start exited 5 (OCF_ERR_INSTALLED, required software is not installed on this "
     "node): Couldn't find device [/dev/tutela-none]"),
])
def test_node_specific_errors_are_hard(make: Make, kit: str, params: dict[str, str],
                                       expected: str) -> None:
    with pytest.raises(OcfError) as error:
        ocf(kit).restore(make(kit, params))
    assert error.value.recovery is Recovery.HARD
    assert str(error.value).startswith(expected)
    assert str(error.value).endswith("; a hard error: not retried on this node")


def test_a_soft_monitor_failure_is_recovered_here(make: Make, tmp_path: Path) -> None:
    """anything: the process dies, its pid file stays: OCF_ERR_GENERIC (soft), and
    recover (stop, start) runs it again."""
    kit = ocf("ocf:heartbeat:anything")
    ctx = make("ocf:heartbeat:anything", {
        "binfile": "/bin/sleep", "cmdline_options": "600",
        "pidfile": str(tmp_path / "anything.pid"), "logfile": str(tmp_path / "out.log")})
    kit.restore(ctx)
    try:
        pid = int((tmp_path / "anything.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        # gone, and reaped: the agent's `kill -s 0` counts a zombie as running
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30,
                   what="the process reaped")
        check = kit.quick_check(ctx)
        assert not check.healthy and "exited 1 (OCF_ERR_GENERIC" in check.reason
        kit.recover(ctx)
        assert kit.quick_check(ctx).healthy
        assert int((tmp_path / "anything.pid").read_text()) != pid
    finally:
        kit.remove(ctx)


def test_a_hard_monitor_failure_is_not_recovered_here(make: Make, tmp_path: Path) -> None:
    """symlink: the link replaced by a plain file makes its monitor exit OCF_ERR_INSTALLED;
    recover then refuses at once (no stop, no start) so the node gives the resource up."""
    kit = ocf("ocf:heartbeat:symlink")
    link, target = tmp_path / "link", tmp_path / "target"
    target.write_text("t")
    ctx = make("ocf:heartbeat:symlink", {"link": str(link), "target": str(target)})
    kit.restore(ctx)
    assert link.is_symlink() and kit.quick_check(ctx).healthy
    link.unlink()
    link.write_text("not a link")
    check = kit.quick_check(ctx)
    assert not check.healthy and "exited 5 (OCF_ERR_INSTALLED" in check.reason
    with pytest.raises(OcfError, match="no local recovery after a hard error") as error:
        kit.recover(ctx)
    assert error.value.recovery is Recovery.HARD
    assert link.read_text() == "not a link"  # nothing was stopped or started


def test_kits_are_made_once_per_agent_version() -> None:
    assert kit_for("ocf:heartbeat:Dummy") is kit_for("ocf:heartbeat:Dummy")
    assert kit_for("ocf:heartbeat:Dummy").name == "ocf:heartbeat:Dummy"


def test_the_pacemaker_tool_rule_line_by_line(tmp_path: Path) -> None:
    """The scanner's rule (docs/kits.md) on a script written for it: comments and
    here-documents skipped; a guard on the line, the then-branch of `if ocf_is_ms`, or a
    promote/notify function make a use optional; anything else is required."""
    script = tmp_path / "agent"
    script.write_text("""#!/bin/sh
# crm_attribute in a comment
meta_data() {
cat <<END
<longdesc>uses crm_attribute for scores</longdesc>
END
}
start() {
    have_binary crm_node && crm_node -n
    crm_resource -Q -r x || ocf_log warn "no CIB"
    if ocf_is_ms; then
        crm_master -v 1
    else
        attrd_updater -n x -U 1
    fi
    ocf_local_nodename
}
agent_promote() {
    ocf_promotion_score -v 10
}
monitor() {
    ${HA_SBIN_DIR}/crm_attribute -n x -G  # read a node attribute
}
""")
    uses = {(use.tool, use.line, use.function, use.optional)
            for use in pacemaker_tool_uses(script)}
    assert uses == {("crm_node", 9, "start", True), ("crm_resource", 10, "start", True),
                    ("crm_master", 12, "start", True), ("attrd_updater", 14, "start", False),
                    ("ocf_promotion_score", 19, "agent_promote", True),
                    ("crm_attribute", 22, "monitor", False)}
