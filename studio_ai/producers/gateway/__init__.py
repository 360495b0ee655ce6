"""The HTTP gateway (FastAPI, one router per resource)."""
