"""Start a detached process inside a lab node: `launch.py --log FILE [--cwd DIR] -- CMD...`.

Run by `Lab.spawn` as ``nsenter --target NODEINIT --net --mount --uts --pid -- PYTHON -I -S
.../tutela/lab/launch.py ...`` (a script, standard library only, so it starts fast), so it is
already inside the node. Protocol with the lab on the host:

1. it forks; the child starts a new session and blocks on a pipe;
2. it prints the child's PID (as seen inside the node) on stdout;
3. the host translates that PID to the host's view (NSpid in /proc/*/status; the child
   exists, as it is blocked), then closes our stdin;
4. on EOF it releases the child and exits; the child, now an orphan of the node, is
   reparented to the node's PID 1 (nodeinit), points stdin to /dev/null and stdout and
   stderr to FILE (appended), and executes CMD.

So no process outside the node waits on CMD, and the host learns its PID without a race.
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: launch.py --log FILE [--cwd DIR] -- CMD [ARG...]"


def which(name: str) -> str | None:
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def parse(argv: list[str]) -> tuple[str, str, list[str]]:
    """Arguments are written by the lab, not by hand: a fixed, argparse-free format keeps
    this process's start quick (it runs once per spawned process)."""
    log, cwd = None, "/"
    while argv and argv[0] != "--":
        if argv[0] in ("--log", "--cwd") and len(argv) > 1:
            if argv[0] == "--log":
                log = argv[1]
            else:
                cwd = argv[1]
            argv = argv[2:]
        else:
            raise SystemExit(f"launch: unexpected argument {argv[0]!r}; {USAGE}")
    if log is None or len(argv) < 2:
        raise SystemExit(USAGE)
    return log, cwd, argv[1:]


def main(argv: list[str] | None = None) -> int:
    log, cwd, command = parse(sys.argv[1:] if argv is None else argv)
    path = which(command[0])
    if path is None:
        print(f"launch: command not found in the node: {command[0]}", file=sys.stderr)
        return 127
    log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    gate_r, gate_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: becomes CMD
        try:
            os.close(gate_w)
            os.setsid()
            os.read(gate_r, 1)  # returns b"" once the launcher is done
            os.close(gate_r)
            os.chdir(cwd)
            os.dup2(null_fd, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.execv(path, command)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape a forked child
            os.write(2, f"launch: cannot start {command[0]}: {exc}\n".encode())
        os._exit(127)
    os.close(gate_r)
    os.close(log_fd)
    os.close(null_fd)
    print(pid, flush=True)
    sys.stdin.read()  # the host closes our stdin once it has found the child
    os.close(gate_w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
