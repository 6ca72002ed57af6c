"""Durable dispatch: the queue workers, retries by error class, crash reconciliation."""
