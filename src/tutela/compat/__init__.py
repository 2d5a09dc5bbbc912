"""LifeKeeper and Serviceguard commands (lkstart, lcdstatus, cmviewcl, cmrunpkg...) as thin
entry points over tutela's own operations, for administrators and scripts that know them.

`view` turns a `tutela status` answer and the configuration into packages and nodes and
prints them in the originals' formats (pure); `lifekeeper` and `serviceguard` hold the
commands; `entry` what they share (the node's state directory, errors and exit codes).
The differences from the originals are listed in docs/compat.md.
"""
