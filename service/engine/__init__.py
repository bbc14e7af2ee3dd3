"""Engines behind one protocol: in-process vLLM, and a fake one in the unit tests."""
