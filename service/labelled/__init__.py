"""Labelled questions, their graders and the quality of a confidence (``quality.py``).

Below both ``calibration`` and ``eval`` (which import it, never the reverse), so the
one definition of an item, a grade and a metric serves fitting and evaluation alike.
"""
