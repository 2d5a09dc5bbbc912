"""tutela lab: a real multi-node cluster out of Linux namespaces, on one machine.

Users rehearse failures with it (`tutela lab ...`, see docs/lab.md); our tests drive it
from Python. Needs root, iproute2, util-linux (unshare, nsenter, setsid, losetup),
e2fsprogs and nftables.

Each node (node1..nodeN, N <= 32) has its own network, mount, UTS and PID namespace, its
hostname, and its own state directory (<lab root>/<node>/state, its TUTELA_STATE_DIR). Two
bridges in a switch namespace join the nodes: net1 (198.51.100.0/24, node i at .10+i, eth0)
and net2 (203.0.113.0/24, node i at .10+i, eth1). A client namespace sits on both nets at
.250. 198.51.100.100-199 are reserved for services' virtual IPs. K loop devices are the
shared disks every node sees. One host process (hardwared) is the lab's hardware: each
node's watchdog (a FIFO speaking the /dev/watchdog protocol), the power switch (fence
agent, reachable from inside nodes) and, with tty=True, a serial cable per pair of nodes.

Python API::

    from tutela.lab import Lab

    with Lab.up("demo", nodes=2, disks=1, disk_size_mb=512, root=None) as lab:
        lab.nodes                         # ["node1", "node2"]
        lab.node_address("node1", net=1)  # "198.51.100.11"
        lab.client_address(net=2)         # "203.0.113.250"
        lab.disks                         # ["/dev/loop3"]
        lab.exec("node1", ["hostname"]).stdout           # "node1\\n" (CompletedProcess[str])
        lab.exec("node1", ["false"], check=False).returncode  # also timeout=60, input, cwd
        lab.client_exec(["ping", "-c1", lab.node_address("node2")])
        pid = lab.spawn("node1", ["sleep", "1000"], "/tmp/sleep.log")  # host PID, detached
        lab.start_daemon("node1")         # tutelad, if <state>/lcd.sqlite exists, else None
        lab.freeze("node1"); lab.node_state("node1")     # "frozen"
        lab.thaw("node1")                                # "running"
        lab.power_off("node1")                           # "off": processes, links, mounts gone
        lab.power_on("node1")             # fresh namespaces, then start_daemon
        lab.mounts("node1")               # [(device, mountpoint), ...] from /proc/PID/mounts
        lab.addresses("node1")            # ["198.51.100.11", "203.0.113.11"] (prefix=True: /24)
        lab.netns("node1"), lab.switch_netns, lab.client_netns        # namespace names
        lab.interface(net=1), lab.switch_port("node1", net=1)         # "eth0", "node1-net1"
        lab.node_pid("node1"), lab.daemon_pid("node1")   # host PIDs (None: not running)
        lab.root, lab.state_dir("node1")  # Paths: <root>, <root>/node1/state
        lab.exec_argv("node1", argv), lab.environment("node1")  # to run without capturing
        lab.status()                      # everything, JSON-ready (`tutela lab status --json`)
        lab.node_mac("node1", net=1)      # "02:74:6c:00:01:01"

        # link cuts (nftables where frames arrive, ARP too; they survive power cycles)
        lab.cut("node1", net=1, peer="node2", direction="out")  # net 1, 2, "tty", None: all
        lab.cuts()                        # [Cut("node1", 1, "node2", "out")]
        lab.heal("node1", net=1)          # the matching cuts; lab.heal_all()

    with Lab.up("demo", nodes=2, disks=0, tty=True) as lab:  # hardware
        lab.tty_device("node1", "node2")  # "<root>/tty/node1-node2": node1's end, a pty link
        lab.tty_counters("node1", "node2")  # (bytes carried, bytes lost) node1 -> node2
        lab.watchdog_path("node1")        # "<root>/node1/watchdog" (FIFO, see watchdog.py)
        lab.watchdog_events("node1")      # [WatchdogEvent(time, "armed", {"timeout": "1"})...]
        lab.fence("node2")                # power off through the power switch
        lab.hardware_pid()                # host PID of the hardware process
    # leaving the block: lab.down()

    lab = Lab.load("demo", root=None)  # attach to a lab built elsewhere (e.g. by the CLI)
    Lab.teardown("demo")              # remove whatever is left of lab "demo", state or not

PIDs returned or recorded by the lab are host PIDs (`os.kill` from the test works); inside
a node the same process has another number (its PID 1 is nodeinit).

Errors are `LabError` (one line: problem and fix); a failing command with check=True raises
`LabCommandError`, a `subprocess.CalledProcessError` whose str() includes stderr.
"""

from tutela.lab.cuts import Cut
from tutela.lab.errors import LabCommandError, LabError
from tutela.lab.lab import DEFAULT_NAME, DEFAULT_ROOT_BASE, Lab, NodeState, default_root
from tutela.lab.watchdog import WatchdogEvent

__all__ = ["DEFAULT_NAME", "DEFAULT_ROOT_BASE", "Cut", "Lab", "LabCommandError", "LabError",
           "NodeState", "WatchdogEvent", "default_root"]
