"""Wiring: settings, broker, store, metrics and logging."""
