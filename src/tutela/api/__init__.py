"""The HTTPS API (docs/api.md): its own process, started by tutelad on the nodes where it is
enabled, talking to the local tutelad over the control socket as the CLI does."""
