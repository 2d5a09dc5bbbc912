"""`tutela disk`: the shared-disk voter (docs/witness.md, "A shared-disk voter").

`init` checks the device on this node, formats the area (zeros, after a confirmation) and
adds the disk voter to the configuration in one change; `show` reads the slots as they are
on the disk; `remove` takes the disk voter out of the configuration.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from tutela.arbiter.disk_voter import SectorError, decode_slot
from tutela.cli import output
from tutela.cli.client import QUESTION_TIMEOUT, call
from tutela.cli.config import _in_force
from tutela.cli.main import (
    EXIT_FAILED,
    EXIT_INVALID,
    _NodeGroup,
    json_option,
    reports_errors,
    state_dir,
)
from tutela.daemon.disk_voter import (
    MAX_SLOTS,
    DeviceProblem,
    area_of,
    logical_sector_size,
    open_device,
    read_at,
    signature,
    write_at,
)
from tutela.model.config import DISK_VOTER_IO_LIMIT, DiskVoter


@click.group("disk", cls=_NodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
def disk_group() -> None:
    """The shared-disk voter: a third vote from a small area on a LUN every node sees.

    \b
    tutela disk init /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
    tutela disk show
    tutela disk remove
    """


@disk_group.command("init")
@click.argument("device")
@click.option("--node-device", "node_devices", multiple=True, metavar="NODE=PATH",
              help="NODE's own path to the same LUN, where it differs from DEVICE; repeat.")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0),
              help="Byte offset of the area on the device (a multiple of 4096).")
@click.option("--sector-size", type=click.Choice(["512", "4096"]),
              help="Bytes per slot  [default: the device's logical sector size]")
@click.option("--io-limit", default=DISK_VOTER_IO_LIMIT, show_default=True,
              type=click.FloatRange(min=0, min_open=True, max=300),
              help="Seconds no I/O to the device stays in flight beyond (its command timeout).")
@click.option("--force", is_flag=True,
              help="Format even though the device holds a filesystem, LVM or a partition table.")
@click.option("--yes", is_flag=True, help="Do not ask before formatting the area.")
@json_option
@reports_errors
def disk_init(device: str, node_devices: tuple[str, ...], offset: int, sector_size: str | None,
              io_limit: float, force: bool, yes: bool, as_json: bool) -> None:
    """Format the disk voter's area on DEVICE and make the disk a voter.

    DEVICE is the LUN's path on every node (a stable one: /dev/disk/by-id/...). One slot
    per node of the configuration, in name order; the area is cleared (zeros) for 64
    slots, after a confirmation. The device is checked on this node only: check the others
    with 'tutela disk show' there.
    """
    config = _in_force()
    if config.get("disk_voter"):
        _refuse(f"a disk voter is configured already ({config['disk_voter']['device']}): "
                "'tutela disk remove' first (formatting an area in use could hand its vote "
                "out twice), or change one setting with 'tutela config set disk_voter.KEY'")
    me = _this_node()
    settings = _settings(config, device, node_devices, offset, sector_size, io_limit)
    path = settings.device_of(me) or device
    size = _check_device(path, settings, force)
    cleared = min(MAX_SLOTS * settings.sector_size, size - settings.offset)
    _confirm(path, settings.offset, cleared, yes)
    _clear(path, settings, cleared)
    result = call(state_dir(), "config.set", timeout=QUESTION_TIMEOUT, key="disk_voter",
                  value=settings.model_dump(mode="json", exclude_defaults=True))
    summary = (f"disk voter {settings.voter_id} on {path}: slots {', '.join(settings.slots)} "
               f"(generation {result['generation']})")
    output_result = {"voter": settings.voter_id, "device": path, "slots": list(settings.slots),
                     "cleared": cleared, "generation": result["generation"],
                     "summary": summary}
    if as_json:
        output.print_json(output_result)
    else:
        click.echo(summary)


@disk_group.command("show")
@json_option
@reports_errors
def disk_show(as_json: bool) -> None:
    """Read the disk voter's slots from this node's path to the LUN, as they are now."""
    settings = _configured()
    path = settings.device_of(_this_node()) or ""
    area = area_of(settings)
    try:
        fd = open_device(path, settings.offset, area.length, settings.sector_size)
    except DeviceProblem as error:
        _fail(f"{_field(settings, _this_node())}: {error}")
    try:
        data = read_at(fd, settings.offset, area.length)
    except OSError as error:
        _fail(f"{path}: cannot read the area: {error.strerror or error}")
    finally:
        os.close(fd)
    slots = [_slot_view(area, data, index) for index in range(len(area.nodes))]
    result = {"voter": settings.voter_id, "device": path, "slots": slots}
    if as_json:
        output.print_json(result)
        return
    click.echo(f"disk voter {settings.voter_id} on {path}")
    for slot in slots:
        click.echo(f"  slot {slot['slot']} {slot['node']}: {slot['text']}")


@disk_group.command("remove")
@json_option
@reports_errors
def disk_remove(as_json: bool) -> None:
    """Stop using the disk voter (the area on the disk is left as it is)."""
    settings = _configured()
    result = call(state_dir(), "config.set", timeout=QUESTION_TIMEOUT, key="disk_voter",
                  value=None)
    summary = f"disk voter {settings.voter_id} removed (generation {result['generation']})"
    if as_json:
        output.print_json({"voter": settings.voter_id, "generation": result["generation"],
                           "summary": summary})
    else:
        click.echo(summary)


# -- helpers ----------------------------------------------------------------------------


def _this_node() -> str:
    status = call(state_dir(), "status")
    return str(status["node"])


def _configured() -> DiskVoter:
    config = _in_force()
    if not config.get("disk_voter"):
        _refuse("this cluster has no disk voter; add one with 'tutela disk init DEVICE'")
    return DiskVoter.model_validate(config["disk_voter"])


def _settings(config: dict[str, Any], device: str, node_devices: tuple[str, ...], offset: int,
              sector_size: str | None, io_limit: float) -> DiskVoter:
    nodes = sorted(n["name"] for n in config["nodes"])
    devices = {}
    for item in node_devices:
        node, sep, path = item.partition("=")
        if not sep or node not in nodes or not path:
            _refuse(f"--node-device {item!r}: write it as NODE=PATH with NODE one of "
                    f"{', '.join(nodes)}")
        devices[node] = path
    try:
        return DiskVoter(device=device, devices=devices, id=secrets.token_hex(16),
                         slots=tuple(nodes), offset=offset,
                         sector_size=int(sector_size or _logical_sector_size(device)),
                         io_limit=io_limit)
    except ValidationError as error:
        _refuse("; ".join(f"disk_voter{''.join(f'.{part}' for part in e['loc'])}: "
                          f"{e['msg'].removeprefix('Value error, ')}" for e in error.errors()))


def _logical_sector_size(path: str) -> int:
    """512 or 4096: the device's logical sector size (512 when it cannot be read)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return 4096 if logical_sector_size(fd) > 512 else 512
        finally:
            os.close(fd)
    return 512


def _check_device(path: str, settings: DiskVoter, force: bool) -> int:
    """The device's size, once it is found fit: a block device of its own, large enough,
    without a filesystem (unless `force`)."""
    length = len(settings.slots) * settings.sector_size
    try:
        fd = open_device(path, settings.offset, length, settings.sector_size, exclusive=True)
    except DeviceProblem as error:
        _refuse(f"{_field(settings, _this_node())}: {error}")
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
    found = signature(path)
    if found and not force:
        _refuse(f"{path} holds {found}: formatting the disk voter's area would destroy it. "
                "Give the disk voter a LUN (or partition) of its own, or add --force if "
                "that data is not needed")
    return size


def _confirm(path: str, offset: int, length: int, yes: bool) -> None:
    what = f"{length} bytes of {path} from byte {offset} will be overwritten with zeros"
    if yes:
        return
    if not sys.stdin.isatty():
        _refuse(f"{what}: confirm with --yes (no terminal to ask on)")
    if not click.confirm(f"{what}. Go on?", default=False):
        _refuse("nothing was changed")


def _clear(path: str, settings: DiskVoter, length: int) -> None:
    fd = open_device(path, settings.offset, length, settings.sector_size)
    try:
        write_at(fd, settings.offset, bytes(length))
    except OSError as error:
        _fail(f"{path}: cannot write the area: {error.strerror or error}")
    finally:
        os.close(fd)


def _slot_view(area: Any, data: bytes, index: int) -> dict[str, Any]:
    size = area.sector_size
    view: dict[str, Any] = {"slot": index, "node": area.nodes[index]}
    try:
        record = decode_slot(area, data[index * size:(index + 1) * size], index)
    except SectorError as error:
        return {**view, "error": str(error), "text": f"unreadable: {error}"}
    if record is None:
        return {**view, "empty": True, "text": "empty (never written)"}
    claims = ", ".join(record.claims) or "nothing"
    return {**view, "incarnation": record.incarnation, "sequence": record.sequence,
            "lease": record.duration, "claims": list(record.claims),
            "text": f"claims {claims} (write {record.sequence}, lease {record.duration:g}s)"}


def _field(settings: DiskVoter, node: str) -> str:
    return f"disk_voter.devices.{node}" if node in settings.devices else "disk_voter.device"


def _refuse(message: str) -> NoReturn:
    output.print_error(message)
    sys.exit(EXIT_INVALID)


def _fail(message: str) -> NoReturn:
    output.print_error(message)
    sys.exit(EXIT_FAILED)
