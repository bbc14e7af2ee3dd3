"""Candor: answers with a calibrated confidence, and abstention when unsure."""

__version__ = "0.1.0"
