"""Health checks: probes against the maintained service (pure judges, I/O checks, a concurrent runner with
per-probe deadlines), Monit-style remediation planning, and the state they keep. The `health` job and recovery
use ``run_probes`` / ``wait_healthy``."""

from .check import run_probes, wait_healthy
from .result import DEGRADED, FAILED, OK, ProbeResult

__all__ = ["run_probes", "wait_healthy", "ProbeResult", "OK", "DEGRADED", "FAILED"]
