"""Test doubles of DC/OS services, served over real HTTP on 127.0.0.1."""

from .auth import Basic, ServiceAccount, Token
from .marathon import MarathonEmulator
from .messages import Request, Response
from .metronome import MetronomeEmulator
from .server import Fault

__all__ = [
    "Basic",
    "Fault",
    "MarathonEmulator",
    "MetronomeEmulator",
    "Request",
    "Response",
    "ServiceAccount",
    "Token",
]
