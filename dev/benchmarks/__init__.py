"""Benchmarks of airflow-provider-flowruns, each a ratio against a baseline run in the same invocation.

``make bench`` runs them in full and writes docs/benchmarks.md; ``python -m benchmarks --smoke``
(part of ``make test``) runs each for seconds so the harness cannot rot. See dev/benchmarks/README.md.
"""
