"""tutelad: wires the LCD, the engine and the local control socket into one asyncio process.

`tutela` (the CLI) talks to it over a Unix socket in the node's state directory.
"""
