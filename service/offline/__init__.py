"""The offline commands, above the runtime: ``candor calibrate`` (``calibrate.py``),
``candor eval`` (``evaluate.py``), and what they share: getting one cascade response per
question from the cache, a server over HTTP, or an in-process engine (``collection.py``,
``batch.py``; the engine is started by ``service.bootstrap``, as ``candor serve`` starts
it).

The libraries they drive stay below the runtime and never import this package:
``service/calibration/`` (collect over HTTP, fit, artifact, scope) and ``service/eval/``
(the held-out report, plots).
"""
