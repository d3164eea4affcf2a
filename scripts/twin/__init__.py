"""Lifeboat's twin: AWS behaviours a failover depends on that moto lacks, emulated inside
the moto server process (`scripts/moto_server.py`) as AWS documents them.

Each module installs itself on one shared `core.Twin` (background evaluators, patched moto
models, WSGI layers, and `/_twin/<name>` control endpoints the Rust harness drives).
Every rule cites the AWS documentation it follows; `scripts/twin/tests/` has a test per rule.
"""
