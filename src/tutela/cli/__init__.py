"""The `tutela` command line: every administrative action, talking to the local daemon.

`main` holds the verbs; `client` the socket client; `output` the tables and trees.
"""
