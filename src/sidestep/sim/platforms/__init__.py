"""One module per simulated platform; each defines one `Profile` subclass."""
