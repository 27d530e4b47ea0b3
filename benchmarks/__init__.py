"""Benchmarks of the adapters against the frameworks' built-ins (issue 7).

``python -m benchmarks`` (or ``nox -s bench``) runs them; see ``benchmarks/__main__.py``.
"""
