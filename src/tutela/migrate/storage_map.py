"""A package's storage: fs groups (FS[] arrays) become filesystem resources in mount order.

Volume groups are reported with the manual step, until tutela has an LVM kit.
"""

from __future__ import annotations

import shlex
from typing import Any

from tutela.migrate.context import check_params
from tutela.migrate.lexer import Value
from tutela.migrate.scope import EMPTY, PackageScope
from tutela.migrate.sgmodel import Group, Outcome
from tutela.model.config import Resource

FSTYPES = {"ext4": "ext4", "xfs": "xfs", "ext3": "ext4", "ext2": "ext4", "": "ext4"}
"""Serviceguard fs_type -> the filesystem kit's; the ext4 driver mounts ext2 and ext3 too."""
CHECK_FSTYPE = "check the filesystem type (blkid DEVICE) and correct params.fstype"


def mount_options(text: str) -> tuple[str, list[str]]:
    """'-o rw,noatime' -> 'rw,noatime'; other mount flags are returned as dropped."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    options: list[str] = []
    dropped: list[str] = []
    take = False
    for word in words:
        if take:
            options += [o.strip() for o in word.split(",") if o.strip()]
            take = False
        elif word == "-o":
            take = True
        elif word.startswith("-o"):
            options += [o.strip() for o in word[2:].split(",") if o.strip()]
        else:
            dropped.append(word)
    return ",".join(options), dropped


class StorageMapper:
    def __init__(self, scope: PackageScope) -> None:
        self.scope = scope

    def volume_groups(self) -> None:
        for value in self.scope.package.volume_groups:
            if not value.text.strip():
                self.scope.record(value, Outcome.NOTHING, EMPTY)
            elif value.key == "vg":
                self.scope.record(value, Outcome.MANUAL, "LVM volume group: tutela has no LVM "
                                  "kit yet, and the filesystems above need it active",
                                  f"activate {value.text} exclusively on the node that "
                                  "restores the hierarchy before its filesystems mount (e.g. a "
                                  "generic resource at the bottom running vgchange -a y / -a "
                                  "n), until an LVM kit exists")
            else:
                self.scope.record(value, Outcome.MANUAL, "how Serviceguard activated the "
                                  "volume groups; see the vg lines")

    def filesystems(self) -> list[Resource]:
        """One resource per fs group, in the order Serviceguard mounted them."""
        found = (self.filesystem(group) for group in self.scope.package.filesystems)
        return [resource for resource in found if resource is not None]

    def filesystem(self, group: Group) -> Resource | None:
        scope = self.scope
        if scope.empty_group(group):
            return None
        user = f"{scope.base} filesystems"
        mountpoint = scope.expand(group.text("fs_directory").strip(), user)
        device = scope.expand(group.text("fs_name").strip(), user)
        fstype = FSTYPES.get(group.text("fs_type").strip().lower())
        problem, step = self.unsupported(group, device, mountpoint, fstype)
        options, dropped = mount_options(group.text("fs_mount_opt"))
        params: dict[str, Any] = {"device": device, "mountpoint": mountpoint, "fstype": fstype}
        if options:
            params["options"] = options
        if not problem:
            problem = check_params("filesystem", params)
            step = "correct it and run the import again"
            problem = f"not valid for the filesystem kit: {problem}" if problem else ""
        if problem:
            scope.skip_group(group, problem, step)
            return None
        leaf = mountpoint.rstrip("/").rsplit("/", 1)[-1] or "root"
        tag = scope.ctx.tag(scope.base, "fs", leaf)
        self.record(group, tag, params, dropped)
        return Resource(tag=tag, kit="filesystem", params=params)

    @staticmethod
    def unsupported(group: Group, device: str, mountpoint: str,
                    fstype: str | None) -> tuple[str, str]:
        """Why the filesystem kit cannot take this group, and what to do; ('', '') if it can."""
        text = group.text("fs_type").strip().lower()
        if "fs_server" in group.values or text.startswith("nfs"):
            return ("NFS-mounted filesystem: the filesystem kit mounts block devices",
                    "mount it from a generic resource (mount/umount), or from /etc/fstab on "
                    "every node")
        if not device or not mountpoint:
            return ("incomplete filesystem: fs_name (LV[]) and fs_directory (FS[]) are both "
                    "needed", "complete it and run the import again")
        if fstype is None:
            return (f"{text} cannot be mounted by tutela's filesystem kit (ext4 and xfs only)",
                    "move the data to an ext4 or xfs filesystem, then: tutela resource create "
                    f"filesystem TAG --param device=DEVICE --param mountpoint={mountpoint} "
                    "--param fstype=ext4, and make the resource above it depend on it")
        return "", ""

    def record(self, group: Group, tag: str, params: dict[str, Any],
               dropped: list[str]) -> None:
        where, record = f"resources[{tag}].params", self.scope.record
        for key, value in sorted(group.values.items(), key=lambda kv: kv[1].loc.line):
            if key == "fs_name":
                record(value, Outcome.MAPPED, f"{where}.device: {params['device']} (mounted "
                       "after the filesystems before it)")
            elif key == "fs_directory":
                record(value, Outcome.MAPPED, f"{where}.mountpoint: {params['mountpoint']}")
            elif key == "fs_type":
                self.record_fstype(value, where, params["fstype"])
            elif key == "fs_mount_opt":
                self.record_options(value, where, params.get("options", ""), dropped)
            elif not value.text.strip():
                record(value, Outcome.NOTHING, "empty, as tutela needs it")
            else:
                record(value, Outcome.MANUAL, f"{key} options are not used: the kit checks "
                       "ext4 with e2fsck -p, xfs at mount, and unmounts after stopping the "
                       "processes that use the mount")
        if "fs_type" not in group.values:
            record(group.first, Outcome.MAPPED, f"{where}.fstype: ext4 assumed (no fs_type "
                   "given)", CHECK_FSTYPE)

    def record_fstype(self, value: Value, where: str, fstype: str) -> None:
        text = value.text.strip().lower()
        if text == fstype:
            self.scope.record(value, Outcome.MAPPED, f"{where}.fstype: {fstype}")
        elif text:
            self.scope.record(value, Outcome.MAPPED, f"{where}.fstype: ext4 (the ext4 driver "
                              f"mounts {text} filesystems)")
        else:
            self.scope.record(value, Outcome.MAPPED, f"{where}.fstype: ext4 assumed (fs_type "
                              "is empty)", CHECK_FSTYPE)

    def record_options(self, value: Value, where: str, options: str,
                       dropped: list[str]) -> None:
        if dropped:
            self.scope.record(value, Outcome.MANUAL, f"{where}.options: {options or '(none)'}"
                              f"; not carried over: {' '.join(dropped)} (the kit passes -o "
                              "only)", "check whether the dropped mount flags matter")
        elif options:
            self.scope.record(value, Outcome.MAPPED, f"{where}.options: {options}")
        else:
            self.scope.record(value, Outcome.NOTHING, "no mount options")
