"""The engine: decides what to run (planner, recovery policy) and runs it (executor, node).

The planner and recovery policy are pure; the executor and node engine do the I/O.
"""
