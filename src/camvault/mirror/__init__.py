"""Background push of the vault's git history and LFS objects to a remote (e.g. GitLab).

Depends on store, history and events; never on api or services.
"""
