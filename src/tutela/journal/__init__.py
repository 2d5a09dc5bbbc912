"""The event journal: every change that matters on a node (a peer or comm path up or down,
a lease won or lost, a hierarchy restored or removed, a fence...) as one structured record,
kept in the state directory and read by `tutela events` from every node (docs/events.md).
"""
