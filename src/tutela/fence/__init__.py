"""Fence agents: programs a taking-over node runs through `settings.fence_command` to cut
the old owner off before it restores (docs/leases.md, "Fast profile")."""
