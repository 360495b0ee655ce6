"""Inference workers: `studio-ai worker inference --pool P` consumes the pool's dedicated queue
(ai.inference-requested.<pool>.v1) with many jobs in flight; see job_runner.py and process.py."""
