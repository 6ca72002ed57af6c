"""One module per platform adapter; each defines one `Adapter` subclass."""
