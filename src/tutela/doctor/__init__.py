"""`tutela doctor`: checks a node, and with `--cluster` every node, before and after it joins.

A pure core (checks.py: facts in, findings out) between thin probes that gather the facts
(probes.py, on each node) and the CLI that prints the findings (cli/doctor.py).
"""
