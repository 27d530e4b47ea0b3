"""Benchmarks of the adapters against the frameworks' built-ins and hand-written equivalents.

``python -m benchmarks`` (or ``nox -s bench``) runs them; see ``benchmarks/__main__.py``.
"""
