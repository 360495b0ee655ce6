"""FastStream handlers, one module per consumed event, grouped by consumer group."""
