"""The feature store: Feast definitions, store configuration, bulk materialization into Redis
and the online read path used for serving.

Submodules import Feast (slow to import); this package itself imports nothing heavy.
"""
