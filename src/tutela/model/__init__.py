"""Plain data types of tutela: nodes, resources, hierarchies, states.

No I/O here; every other layer builds on these types.
"""
