"""Wire contracts: pydantic models for events and the HTTP API.

No I/O, and no imports of our own code outside schemas/.
"""
