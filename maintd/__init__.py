"""maintd: the maintenance daemon for a self-hosted service."""

__version__ = "0.1.0"
