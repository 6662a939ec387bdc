"""The East codec: the only part of e3 that imports east-py (``east``).

east-py (``elaraai-east-py``, BSL-1.1, pinned exactly in ``pyproject.toml``)
provides East types, values, Beast2, ``.east`` text, JSON, CSV and the IR
compiler. Every use of it goes through the submodules here:

* :mod:`e3.codec.types` — type constructors and type utilities;
* :mod:`e3.codec.beast2` — canonical Beast2 bytes (what object hashes are taken of);
* :mod:`e3.codec.text` — ``.east`` text, JSON and CSV for users;
* :mod:`e3.codec.ir` — East function IR: extraction, normalisation, compilation.

Keeping east-py behind this package means an upgrade (or a licence change)
touches one place. Importing ``e3.codec`` itself is free; each submodule
imports east-py when first imported.
"""
