"""Free ports and waiting for a local server to answer (in sandbox/process.py, which bench/ uses too)."""

from sandbox.process import free_port, wait_http_ok

__all__ = ["free_port", "wait_http_ok"]
