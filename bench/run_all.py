"""Run every benchmark in turn and write docs/benchmarks.md (what `make bench` does).

Run as root from the repository: `.venv/bin/python bench/run_all.py [--quick]
[--only NAME ...] [--output docs/benchmarks.md] [--work-dir DIR]`.

Each script (detection, heartbeat_load, false_failovers, failover, keepalived, fast_profile, scale,
restore_shape, notify_failover, db_failover) runs as a subprocess of this interpreter;
its stdout is its Markdown section, its stderr goes to <work dir>/<name>.log and its raw figures to
<work dir>/<name>.json (`--samples`). The page gets a header with the machine's facts,
then one section per script, then box plots of the client-visible outages (tutela vs
keepalived, redrawn only when both ran) in <output dir>/img/. A missing script's section
says "not run"; a failing script's section keeps whatever it printed, and run_all exits 1
at the end naming it and its log. With `--only`, the other sections are kept from the existing page.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"
PLOTS = "plots"
"""The pseudo-section with the outage plots (drawn from failover's and keepalived's samples)."""
SYSTEM_ORDER = ("tutela", "tutela real-server", "keepalived defaults", "keepalived tuned")
"""Boxes in this order: tutela with the lab's watchdogs, with whole-second (real-server)
watchdogs (bench/failover.py's profiles), then keepalived."""
INTERRUPT_GRACE = 120.0
"""Seconds a timed-out script gets after SIGINT to tear its lab down, before SIGKILL."""


@dataclass(frozen=True)
class Script:
    name: str
    title: str
    quick: tuple[str, ...] = ()
    """Options for a smoke run; each option is passed only if the script's --help has it."""
    samples_option: str = "--samples"


SCRIPTS = (
    Script("detection", "Cluster membership: failure detection and idle cost",
           ("--cuts", "3", "--idle", "5")),
    Script("heartbeat_load", "Heartbeats under load", ("--seconds", "5")),
    Script("false_failovers", "False failovers under load", ("--minutes", "0.5")),
    Script("failover", "Failover: client-visible outage", ("--runs", "2")),
    Script("keepalived", "Comparison: keepalived", ("--runs", "2")),
    Script("fast_profile", "Fast profile beside keepalived tuned",
           ("--runs", "1", "--false-failover-minutes", "0.5")),
    Script("scale", "Scale: many nodes and resources",
           ("--nodes", "8", "--resources", "40", "--hierarchies", "8", "--idle", "5")),
    Script("restore_shape", "Restore shape", ("--runs", "2")),
    Script("notify_failover", "Failover with a notification target that hangs",
           ("--runs", "2")),
    Script("db_failover", "Databases: write outage and rows lost across a node kill",
           ("--runs", "2")),
)
NAMES = [s.name for s in SCRIPTS]


@dataclass
class Outcome:
    script: Script
    section: str
    log: Path | None = None
    failed: str | None = None
    """Why it failed (exit status, timeout); None when it succeeded or was not run."""
    seconds: float = 0.0
    samples: Path | None = None


@dataclass
class Run:
    output: Path
    work: Path
    quick: bool
    timeout: float
    load: str = ""
    """The load average when the run started (the page is written at its end)."""
    outcomes: list[Outcome] = field(default_factory=list)


# --- running the scripts -------------------------------------------------------------------

def quick_options(path: Path, wanted: Sequence[str]) -> list[str]:
    """The options of `wanted` (option, value, ... pairs) that `path --help` lists."""
    result = subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                            text=True, cwd=REPO, timeout=120, check=False)
    known = set(re.findall(r"--[a-z][a-z0-9-]*", result.stdout))
    options: list[str] = []
    option: list[str] = []
    for word in [*wanted, "--"]:  # "--" closes the last group
        if word.startswith("--"):
            if option and option[0] in known:
                options += option
            option = [word]
        else:
            option.append(word)
    return options


def argv_for(run: Run, script: Script) -> list[str]:
    path = BENCH / f"{script.name}.py"
    argv = [sys.executable, str(path.relative_to(REPO))]
    if run.quick:
        argv += quick_options(path, script.quick)
    argv += [script.samples_option, str(run.work / f"{script.name}.json")]
    tutela_samples = run.work / "failover.json"
    if script.name == "keepalived" and tutela_samples.exists():
        argv += ["--tutela-samples", str(tutela_samples)]
    return argv


def run_script(run: Run, script: Script) -> Outcome:
    path = BENCH / f"{script.name}.py"
    if not path.exists():
        return Outcome(script, f"not run: {path.relative_to(REPO)} does not exist (yet)")
    log = run.work / f"{script.name}.log"
    samples = run.work / f"{script.name}.json"
    samples.unlink(missing_ok=True)
    argv = argv_for(run, script)
    print(f"run_all: {script.name}: {' '.join(argv)} (log: {log})", file=sys.stderr,
          flush=True)
    started = time.monotonic()
    with log.open("w") as err:
        err.write(f"$ {' '.join(argv)}\n")
        err.flush()
        process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=err, text=True,
                                   start_new_session=True)
        try:
            out, _ = process.communicate(timeout=run.timeout)
            failed = f"exit status {process.returncode}" if process.returncode else None
        except subprocess.TimeoutExpired:
            out = interrupt(process)
            failed = f"timed out after {run.timeout:g} s"
        except KeyboardInterrupt:  # its own session does not get the terminal's Ctrl-C
            interrupt(process)
            raise
    seconds = time.monotonic() - started
    print(f"run_all: {script.name}: {failed or 'done'} in {seconds:.0f} s", file=sys.stderr,
          flush=True)
    section = out.strip().replace(f"{run.work}/", "$WORK/").replace(f"{REPO}/", "")
    if failed:
        section = (f"{section}\n\n" if section else "") + (
            f"**failed** ({failed}); its log: `{log}`")
    return Outcome(script, section, log, failed, seconds,
                   samples if samples.exists() else None)


def interrupt(process: subprocess.Popen[str]) -> str:
    """SIGINT to the script (its `with Lab.up` tears the lab down), then SIGKILL; its stdout."""
    os.killpg(process.pid, signal.SIGINT)  # the session this runner started for it
    try:
        out, _ = process.communicate(timeout=INTERRUPT_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
    return out or ""


# --- the page -------------------------------------------------------------------------------

def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_facts(run: Run) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    cores = len(re.findall(r"^processor\s*:", cpuinfo, re.M))
    mem_kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(),
                            re.M).group(1))  # type: ignore[union-attr]
    os_release = Path("/etc/os-release")
    distro = next((line.split("=", 1)[1].strip('"') for line in
                   os_release.read_text().splitlines() if line.startswith("PRETTY_NAME=")),
                  "unknown") if os_release.exists() else "unknown"
    uname = platform.uname()
    return [f"- CPU: {cores} x {models[0] if models else uname.machine}",
            f"- memory: {mem_kib / 2**20:.1f} GiB",
            f"- system: {distro}, {uname.system} {uname.release} {uname.machine}",
            f"- Python {platform.python_version()}",
            f"- load average when the run started: {run.load}; when it ended: "
            f"{load_average()}"]


def git_commit() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO,
                                timeout=60, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    # This page and its plots are rewritten by the run itself: they do not count.
    changed = git("status", "--porcelain", "--", ".", ":!docs/benchmarks.md", ":!docs/img")
    return commit + (" with uncommitted changes" if changed else "")


def header(run: Run, started: datetime.datetime, partial: bool) -> str:
    lines = [
        "# Benchmarks", "",
        "Regenerate this page with `make bench` (as root; it installs keepalived, stress-ng "
        "and matplotlib), or one part of it with `make bench ONLY=\"detection\"`. Every "
        "section below names the command that produced it; each runs on real lab clusters "
        "(namespaces on this one host). Speed and memory targets live here, never as timed "
        "assertions in tests.", "",
        f"Generated {started.strftime('%Y-%m-%d %H:%M UTC')} from commit {git_commit()} by "
        f"`{' '.join(['python', *[str(a) for a in sys.argv]])}`, on:", "",
        *machine_facts(run),
        "", "In the commands, `$WORK` is the run's work directory (each script's log and raw "
        "samples, `--samples`).",
    ]
    if run.quick:
        lines += ["", "**Quick smoke run (`--quick`)**: few runs, short loads; the numbers "
                  "only show that every benchmark works."]
    if partial:
        ran = ", ".join(o.script.name for o in run.outcomes) or "none"
        lines += ["", f"This run (`--only`) produced: {ran}; the other sections were kept "
                  "from the page as it was (each names its own command)."]
    return "\n".join(lines)


def marked(name: str, title: str, body: str) -> str:
    return f"<!-- bench:{name} -->\n## {title}\n\n{body.strip()}\n<!-- /bench:{name} -->"


def old_sections(output: Path) -> dict[str, str]:
    """The sections of a page this runner wrote before, by name (markers included)."""
    if not output.exists():
        return {}
    return {m.group(1): m.group(0) for m in re.finditer(
        r"<!-- bench:([a-z_]+) -->\n.*?<!-- /bench:\1 -->", output.read_text(), re.S)}


def page(run: Run, started: datetime.datetime, partial: bool, plots: str | None) -> str:
    old = old_sections(run.output)
    done = {o.script.name: o for o in run.outcomes}
    parts = [header(run, started, partial)]
    for script in SCRIPTS:
        if script.name in done:
            outcome = done[script.name]
            body = outcome.section
            if outcome.seconds:
                body += f"\n\n_{script.name}: {outcome.seconds:.0f} s._"
            parts.append(marked(script.name, script.title, body))
        elif script.name in old:
            parts.append(old[script.name])
        else:
            parts.append(marked(script.name, script.title,
                                "not run: not selected (`--only`)"))
        if script.name == "keepalived":
            if plots is not None:
                parts.append(marked(PLOTS, "Outage distributions", plots))
            elif PLOTS in old:
                parts.append(old[PLOTS])
    return "\n\n".join(parts) + "\n"


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- plots ------------------------------------------------------------------------------------

def outage_samples(run: Run) -> dict[str, dict[str, list[float]]]:
    """scenario -> system -> outages, from failover's and keepalived's samples."""
    by_scenario: dict[str, dict[str, list[float]]] = {}
    for name in ("failover", "keepalived"):
        path = run.work / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for system, scenarios in data.items():
            if not isinstance(scenarios, dict):
                continue
            for scenario, values in scenarios.items():
                if isinstance(values, list) and values:
                    by_scenario.setdefault(scenario, {})[system] = [float(v) for v in values]
    return by_scenario


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def draw_plots(run: Run) -> str | None:
    """Box plots with every run as a dot, one PNG per scenario; the Markdown linking them.
    None unless both failover and keepalived ran (the old plots section and images stay:
    plots of one run's samples against another's would not say which is which)."""
    ran = {o.script.name for o in run.outcomes if o.log}
    if not {"failover", "keepalived"} <= ran:
        return None
    data = outage_samples(run)
    if not data:
        return "not drawn: neither failover nor keepalived wrote samples."
    try:
        import matplotlib as mpl
        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("run_all: matplotlib is missing: pip install -e '.[bench]'", file=sys.stderr)
        return "not drawn: matplotlib is not installed (`pip install -e '.[bench]'`)."
    images = run.output.parent / "img"
    lines = ["Client-visible outage of every run (dots) with its box plot (median, quartiles), "
             "per scenario: tutela (bench/failover.py; 'tutela real-server': its real-server "
             "profile, whole-second watchdogs) against keepalived with its defaults "
             "and tuned (bench/keepalived.py). The raw numbers are in those scripts' "
             "`--samples` files.", ""]
    jitter = random.Random(0)
    drawn_now = {f"outage-{slug(scenario)}.png" for scenario in data}
    for stale in images.glob("outage-*.png"):  # scenarios no script measures any more
        if stale.name not in drawn_now:
            stale.unlink()
    for scenario, systems in data.items():
        names = sorted(systems, key=lambda s: (SYSTEM_ORDER.index(s)
                                               if s in SYSTEM_ORDER else len(SYSTEM_ORDER), s))
        figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        values = [systems[n] for n in names]
        axes.boxplot(values, showfliers=False, widths=0.5)
        axes.set_xticks(range(1, len(names) + 1), names)
        for index, points in enumerate(values, start=1):
            axes.scatter([index + jitter.uniform(-0.12, 0.12) for _ in points], points,
                         s=14, alpha=0.7, zorder=3)
        axes.set_ylim(bottom=0)
        axes.set_ylabel("outage (s)")
        axes.set_title(scenario)
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        png = images / f"outage-{slug(scenario)}.png"
        with tempfile.TemporaryDirectory() as tmp:
            drawn = Path(tmp) / png.name
            figure.savefig(drawn, format="png")
            write_atomically(png, drawn.read_bytes())
        plt.close(figure)
        lines.append(f"![{scenario}](img/{png.name})")
        lines.append("")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small parameters everywhere: a smoke run of every benchmark")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME",
                        help=f"run only these ({', '.join(NAMES)}); the page keeps the "
                             "other sections it had")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the page to write (plots go to img/ beside it)")
    parser.add_argument("--work-dir", type=Path,
                        help="where logs and samples go (default: a new /tmp/tutela-bench-*)")
    parser.add_argument("--timeout", type=float,
                        help="seconds one script may run (default 4 h, 30 min with --quick)")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.UTC)
    work = args.work_dir or Path(tempfile.mkdtemp(
        prefix=f"tutela-bench-{started.strftime('%Y%m%d-%H%M%S')}-"))
    work.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout or (1800.0 if args.quick else 4 * 3600.0)
    run = Run(args.output.resolve(), work.resolve(), args.quick, timeout, load_average())
    selected = args.only or NAMES
    print(f"run_all: logs and samples in {run.work}", file=sys.stderr, flush=True)
    try:
        for script in SCRIPTS:
            if script.name in selected:
                run.outcomes.append(run_script(run, script))
    finally:  # what ran so far reaches the page, also after Ctrl-C
        plots = draw_plots(run)
        write_atomically(run.output,
                         page(run, started, args.only is not None, plots).encode())
        print(f"run_all: wrote {run.output}", file=sys.stderr, flush=True)
    failures = [o for o in run.outcomes if o.failed]
    for outcome in failures:
        print(f"run_all: {outcome.script.name} failed ({outcome.failed}); log: {outcome.log}",
              file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
