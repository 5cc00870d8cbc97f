"""The name of this process in audit events and metrics: ``host:pid``."""

from __future__ import annotations

import os
import socket

__all__ = ["default_instance"]


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
