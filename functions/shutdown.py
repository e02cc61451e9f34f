"""Writing what is buffered when Lambda shuts an execution environment down.

Lambda sends SIGTERM to the runtime before it stops an environment only when an extension is
registered; it then gives the runtime up to 500 ms (with an internal extension) before SIGKILL.
``enable()`` (called while the handler module is imported, in the Init phase, as internal
extensions must be) registers this process as an internal extension through the Extensions API
(``AWS_LAMBDA_RUNTIME_API``) and installs a SIGTERM handler that runs the registered hooks (the
capture writer's flush) and exits. The predict handler calls it only where that variable is set.
Nothing here may break the function: a failed registration is logged and serving goes on (only
the flush at shutdown is lost).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from functions.observability import logger

EXTENSION_NAME = "mlops-flush-on-shutdown"
EXTENSIONS_API = "2020-01-01/extension"
SHUTDOWN_BUDGET_SECONDS = 0.4  # of the 500 ms Lambda gives a runtime with an internal extension

_hooks: list[Callable[[float], None]] = []
_installed: list[bool] = []  # non-empty once enable() has run


def on_shutdown(hook: Callable[[float], None]) -> None:
    """Run ``hook(timeout_seconds)`` at SIGTERM (hooks run in registration order, each contained)."""
    _hooks.append(hook)


def run_hooks(budget: float = SHUTDOWN_BUDGET_SECONDS) -> None:
    """Run every hook, sharing ``budget`` seconds; a failing hook never stops the others."""
    for hook in list(_hooks):
        try:
            hook(budget / max(1, len(_hooks)))
        except Exception:  # noqa: BLE001 - shutting down: log and go on
            logger.exception("shutdown hook failed")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    run_hooks()
    sys.exit(0)


def enable() -> None:
    """Install the SIGTERM handler and, on Lambda, register the internal extension. Idempotent."""
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed.append(True)
    api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if api:
        try:
            register_extension(api)
        except Exception as exc:  # noqa: BLE001 - never fail Init for this
            logger.warning("internal extension not registered; buffered capture may be lost at shutdown", exc_info=exc)


def register_extension(api: str) -> str:
    """Register this process as an internal extension for INVOKE events and keep acknowledging them.

    Returns:
        The extension id Lambda assigned.
    """
    import urllib.request  # only on Lambda: the predict cold start elsewhere does not pay for it

    request = urllib.request.Request(
        f"http://{api}/{EXTENSIONS_API}/register",
        data=json.dumps({"events": ["INVOKE"]}).encode(),
        headers={"Lambda-Extension-Name": EXTENSION_NAME, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - Lambda's local Runtime API
        extension_id = response.headers["Lambda-Extension-Identifier"]
    if not extension_id:
        raise RuntimeError("the Extensions API returned no Lambda-Extension-Identifier")
    threading.Thread(target=_acknowledge, args=(api, extension_id), name=EXTENSION_NAME, daemon=True).start()
    return str(extension_id)


def _acknowledge(api: str, extension_id: str) -> None:
    """Ask for the next event, forever: each call tells Lambda this extension is done with the last one."""
    import time
    import urllib.request

    failures = 0
    while True:  # never stops: Lambda waits for a registered extension's Next before finishing an invoke
        request = urllib.request.Request(
            f"http://{api}/{EXTENSIONS_API}/event/next", headers={"Lambda-Extension-Identifier": extension_id}
        )
        try:
            with urllib.request.urlopen(request, timeout=None) as response:  # noqa: S310
                response.read()
            failures = 0
        except Exception as exc:  # noqa: BLE001 - retried, with a pause so a broken API is not hammered
            failures += 1
            if failures == 1:
                logger.warning("internal extension: Next failed; retrying", exc_info=exc)
            time.sleep(min(1.0, 0.05 * failures))
