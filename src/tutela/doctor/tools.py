"""The programs each kit runs, with the Debian package that has them: what doctor looks for
on every node. tests/unit/test_doctor.py fails for a kit missing here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tool:
    program: str
    package: str
    """The Debian package that installs it."""
    use: str
    """What the kit needs it for."""


KIT_TOOLS: dict[str, tuple[Tool, ...]] = {
    "ip": (Tool("ping", "iputils-ping", "the quick check of ping_list"),),
    "filesystem": (Tool("mount", "mount", "mounting"),
                   Tool("umount", "mount", "unmounting"),
                   Tool("e2fsck", "e2fsprogs", "the check before an ext4 mount"),
                   Tool("dumpe2fs", "e2fsprogs", "the multi-mount protection check of ext4")),
    "process": (Tool("sh", "dash", "command lines"),),
    "device": (Tool("blockdev", "util-linux", "read_only_on_remove (--setro, --setrw, --getro)"),),
    "generic": (),  # the administrator's scripts: the resources check finds those
    "postfix": (Tool("postfix", "postfix", "starting and stopping it (ocf:heartbeat:postfix)"),
                Tool("postconf", "postfix", "reading queue_directory and "
                                            "alternate_config_directories")),
    "samba": (Tool("smbd", "samba", "the file server"),
              Tool("testparm", "samba-common-bin", "checking smb.conf before a start")),
    "nfs": (Tool("ganesha.nfsd", "nfs-ganesha", "the NFS server (with nfs-ganesha-vfs)"),),
    # pg_ctl and psql live in the kit's bindir, which its own check (doctor's resources) checks
    "postgresql": (Tool("runuser", "util-linux", "running pg_ctl and psql as the server's "
                                                 "user"),),
    "mariadb": (Tool("mysqld_safe", "mariadb-server", "starting the server "
                                                      "(ocf:heartbeat:mysql)"),
                Tool("mariadb", "mariadb-client", "the check's query over the socket")),
    "apache": (Tool("apache2", "apache2", "the web server (ocf:heartbeat:apache)"),
               Tool("wget", "wget", "the check's page fetch")),
    "nginx": (Tool("nginx", "nginx", "the web server (ocf:heartbeat:nginx)"),
              Tool("wget", "wget", "the check's page fetch")),
}
DOCTOR_TOOLS = (Tool("blkid", "util-linux", "reading the UUIDs of shared disks"),)
"""What doctor itself runs."""


def every_program() -> list[str]:
    return sorted({t.program for tools in KIT_TOOLS.values() for t in tools}
                  | {t.program for t in DOCTOR_TOOLS})
