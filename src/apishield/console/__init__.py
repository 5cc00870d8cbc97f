"""The investigation console: web pages on the admin listener for alerts, events and principals.

:func:`mount_console` adds it to an admin server under ``/console``; see
:mod:`apishield.console.app` for the pages and :mod:`apishield.console.session`
for sign-in, sessions and CSRF protection. docs/console.md describes it
for operators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apishield.console.app import Console
from apishield.console.session import is_loopback

if TYPE_CHECKING:
    from apishield.admin.server import AdminServer
    from apishield.detect.service import DetectionService
    from apishield.runtime import Runtime

__all__ = ["Console", "mount_console"]


def mount_console(
    server: AdminServer, runtime: Runtime, detection: DetectionService | None = None
) -> Console:
    """Serve the console on ``server`` (not started yet); cookies are ``Secure`` off loopback.

    Without an admin token (``admin.token_file``/``admin.token_env``) the
    console answers every page with 503 and a note saying what to set.
    """
    console = Console(server.app.credential, runtime, detection, secure_cookies=not is_loopback(server.host))
    server.app.add(console.route())
    return console
