"""Atomic file writes: a file a user saved is either its old or its complete new version."""
from .atomic import atomic_open, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text"]
