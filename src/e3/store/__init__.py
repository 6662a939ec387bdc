"""Storage primitives: atomic files, the object store, locks, process identity.

Everything that writes bytes to the repository goes through
:mod:`e3.base.atomic` (stage, fsync, rename), so a crash at any moment leaves
either the old or the new file, never a torn one.
"""
