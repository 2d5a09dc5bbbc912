"""Notifications: the event journal's records sent to the targets the configuration names.

Off the event loop, filtered by kind and severity, retried with backoff
(docs/notifications.md): `channels` delivers one record to one target; `dispatch` decides
which records go where and when, and never lets the daemon wait on a target.
"""
