"""Kept for the job modules' imports: the contract lives in maintd/job_contract.py (a lower layer, so domain code
that reports progress or checks cancellation can take a JobContext without importing the jobs package)."""

from ..job_contract import ArgParser, JobContext, JobResult, JobSpec, no_args

__all__ = ["ArgParser", "JobContext", "JobResult", "JobSpec", "no_args"]
