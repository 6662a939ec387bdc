"""Hypothesis profiles for the codec property tests.

``ci`` (the default) is derandomized, so a run is reproducible and needs no example
database; ``long`` is for hunting bugs: ``HYPOTHESIS_PROFILE=long pytest tests/codec``.
Each property states its budget relative to ``ci`` (``scaled`` in the test module), so
``long`` multiplies every property's number of examples by 20.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=100)
settings.register_profile("long", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
