"""Emulators of the vendor APIs, for the provider's own tests, demos and users' offline DAG tests.

``flowruns-emulator serve`` runs them on 127.0.0.1; :class:`EmulatorProcess` does the same from a
test. Each vendor is a FastAPI router mounted under ``/<vendor>`` on one app, sharing a clock you
can speed up, run progressions, fault injection and rate-limit enforcement.
"""
