"""The sandbox process helper, now in sandbox/process.py (bench/ uses it without importing tests)."""

from sandbox.process import KEY, ROOT, SandboxServer

__all__ = ["KEY", "ROOT", "SandboxServer"]
