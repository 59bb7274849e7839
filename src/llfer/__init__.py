"""llfer: facial expression recognition in low light and at low resolution."""

__version__ = "0.1.0"
