"""Talking to the outside world: the store, the hub, engines and providers."""
