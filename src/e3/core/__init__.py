"""Domain operations on a local repository.

Packages, workspaces, datasets, the execution cache, history, garbage collection
and verification: each module takes a :class:`~e3.store.repository.RepoStore`
and works on its files; nothing here runs tasks or speaks HTTP.
"""
