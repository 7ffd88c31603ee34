"""Test setup: no network (any non-loopback connection fails the test), offline hub, few threads."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_real_connect = socket.socket.connect
_real_create_connection = socket.create_connection


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    try:
        loopback = isinstance(host, str) and (host == "localhost" or ipaddress.ip_address(host).is_loopback)
    except ValueError:
        loopback = False
    if self.family == socket.AF_UNIX or loopback:
        return _real_connect(self, address)
    raise RuntimeError(f"test tried to reach the network: {address}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket, "create_connection", _fail_create_connection)
    yield


def _fail_create_connection(address, *args, **kwargs):
    host = address[0]
    if host in ("localhost", "127.0.0.1", "::1"):
        return _real_create_connection(address, *args, **kwargs)
    raise OSError(f"network disabled in tests: {address}")
