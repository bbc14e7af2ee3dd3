"""Live monitoring of the promise: audited realised risk with anytime-valid bounds, verdicts,
drift of the inputs against the calibration set (docs/operations.md, "Live monitoring")."""
