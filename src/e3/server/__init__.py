"""The e3 HTTP API server (``pip install e3-engine[server]``): ``e3-api-server`` / ``e3 serve``."""
