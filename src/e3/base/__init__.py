"""Primitives every layer may use: names, dataset paths, hashing, versions, processes, settings.

Nothing here imports east-py or touches a repository; each module depends on the
standard library and :mod:`e3.errors` only.
"""
