"""treadle: Spinnaker-style deployment stages as plain CI steps."""

__version__ = "0.1.0"

__all__ = ["__version__"]
