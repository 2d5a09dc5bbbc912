"""The arbiter: quorum and majority-granted ownership leases, as sans-IO cores.

Voters grant leases in their own clock; holders count majorities and self-fence in theirs.
"""
