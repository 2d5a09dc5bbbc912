"""tutela-witness: a standalone voter for one or more clusters; it holds no resources.

Clusters enrol with a one-time token; their nodes then ask it for lease grants over TCP.
"""
