"""Engines behind one protocol (``protocol.py``): vLLM in this process (``vllm_local.py``)
or a remote OpenAI-compatible server (``openai_remote.py``), chosen by ``factory.py``;
``model_store.py`` prepares the embedded model once. Unit tests use ``tests/fakes.py``."""
