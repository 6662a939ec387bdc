"""Plain data that crosses boundaries.

Results, events, run options and outcomes, the repository protocol, and the HTTP
wire forms of all of them. No behaviour and no storage here, so the CLI, the
server, the client and the engine share these types without importing one another.
"""
