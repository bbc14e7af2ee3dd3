"""Uncertainty signals, one module per family. Every confidence is in [0, 1], higher = surer."""
