"""The package version, in one place: the public API and run folders read it."""

__version__ = "0.1.0"
