"""Evaluation of a calibrated cascade on labelled records: held-out metrics per stage and
policy (``report.py``), the plots (``plots.py``) and signal scores (``scores.py``). The
``candor eval`` command that runs it lives in ``service/offline``."""
