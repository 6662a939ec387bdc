"""The porcelain: the public Python API that the CLI, the server and embedders use."""
