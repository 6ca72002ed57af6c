"""The archive: every post the brand published or imported, its media by sha256, export."""
