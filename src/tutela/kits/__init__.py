"""Recovery kits: the code that brings one kind of resource in and out of service.

Every kit implements the interface in `tutela.kits.base`; `tutela.kits.registry` finds them.
"""
