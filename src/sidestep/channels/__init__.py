"""Channel adapters: one module per platform, one error taxonomy, one HTTP layer."""
