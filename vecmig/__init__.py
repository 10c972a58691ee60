"""vecmig: migrations-as-code for vector databases."""

__version__ = "0.1.0"
