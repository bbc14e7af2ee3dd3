"""Claims: split an answer into claims, score each, keep those a calibrated threshold covers.

``split.py`` (the deterministic splitter and the ``Splitter`` seam), ``signals.py`` (each
claim's token signals from the greedy pass and its support among the samples) and
``assess.py`` (what the cascade calls). The threshold's maths (conformal factuality with a
finite-sample statement) is calibration's: ``service/calibration/conformal.py``.
docs/claims.md explains them.
"""
