"""Running several workers: leader election, health and metrics, logs, graceful stop.

This package sits just below the wiring (``bot/app.py``): it may use storage, services and
the core, and nothing but the wiring imports it.
"""
