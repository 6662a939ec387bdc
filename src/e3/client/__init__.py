"""HTTP client for e3 API servers (``e3.client.service.open_remote``)."""
