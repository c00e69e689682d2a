"""Ingest benchmark (DESIGN §10, first bullet): webhook POST → committed → WS event.

Run from the repository root with ``python -m bench.ingest --help``.
"""
