"""Power-cut crash-state explorer: ``python -m fuzz powercut`` (see :mod:`.explore`)."""
