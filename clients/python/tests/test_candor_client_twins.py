"""The sync and async clients are twins on one base: the same endpoints with the same
parameters, and everything but the I/O (send, sleep, close) inherited from it."""

from __future__ import annotations

import inspect

import httpx

from candor_client import AsyncCandorClient, CandorClient
from candor_client._base import BaseClient

ENDPOINTS = ("answer", "score", "feedback", "calibration", "health")
IO = {CandorClient: {"close", "__enter__", "__exit__"},
      AsyncCandorClient: {"aclose", "__aenter__", "__aexit__"}}


def test_the_endpoints_match_parameter_for_parameter() -> None:
    for name in ENDPOINTS:
        sync, asyn = getattr(CandorClient, name), getattr(AsyncCandorClient, name)
        assert inspect.iscoroutinefunction(asyn) and not inspect.iscoroutinefunction(sync)
        assert inspect.signature(sync) == inspect.signature(asyn), name


def test_each_twin_adds_only_io_and_the_endpoints() -> None:
    for cls, io in IO.items():
        assert issubclass(cls, BaseClient)
        own = {n for n in vars(cls) if not n.startswith("__") or n in io}
        assert own - {"_new_http", "_call", "_request"} == set(ENDPOINTS) | io, cls


def test_options_and_copies_are_the_base_s() -> None:
    with httpx.Client() as pool:
        sync = CandorClient("http://x.test/", api_key="k", http_client=pool)
        fast = sync.with_options(timeout=1, max_retries=0)
        assert type(fast) is CandorClient and fast._http is pool and not fast._owns_http
        assert (fast.base_url, fast._opts.api_key, fast._opts.max_retries) == (
            "http://x.test", "k", 0)
    asyn = AsyncCandorClient("http://x.test", max_retries=5).with_options(timeout=2)
    assert type(asyn) is AsyncCandorClient and asyn._opts.max_retries == 5
    assert asyn._opts.timeout.read == 2
