"""The suite on disk: case and solution contracts, discovery without importing, loading, and the manifest."""
