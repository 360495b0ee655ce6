"""Pure logic: no I/O, no frameworks. Unit tests need no fakes for it."""
