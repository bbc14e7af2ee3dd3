"""Calibration: collect labelled cascade runs, fit per-stage maps, pick risk-controlled
thresholds (Learn-then-Test), and the versioned JSON artifact the server loads."""
