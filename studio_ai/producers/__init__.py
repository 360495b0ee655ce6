"""What publishes: the HTTP gateway, the CLI and a small Python client."""
