"""Local stand-ins for the outside world, used by tests, benchmarks and `make run`."""
