"""Cluster communication (LifeKeeper's "communication manager"): frames, heartbeats, paths.

frame, replay, stream and detector are sans-IO cores; the transports feed them bytes and times.
"""
