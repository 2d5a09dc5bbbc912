"""tutela: a high-availability failover cluster manager for Linux.

Layers (each depends only on those below): cli, daemon, engine, lcd, kits, model.
"""

__version__ = "0.1.0"
