"""Fake provider organisations and servers for tests and the demo (nothing here is real)."""
