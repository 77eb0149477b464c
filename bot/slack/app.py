"""`build_app(runtime) -> AsyncApp`: wiring only.

Bolt verifies every request's signature and refuses stale timestamps (request verification stays on). Events
are acked at once and listeners run after the ack (process_before_response=False). A global middleware puts
the runtime and "which request is this thread?" into the context once, so listeners stay one-liners.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from bot.slack import listeners
from bot.slack.runtime import thread_of

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)
BOLT_LOGGER = "bot.slack.bolt"


class _SkipTokenUnused(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment even when given our client, then warns that the token
    is unused. It is: the client carries it (with SLACK_API_URL and the retry handlers). Drop that one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_app(rt: Runtime) -> AsyncApp:
    """The Bolt app for this runtime, with every listener registered."""
    bolt_logger = logging.getLogger(BOLT_LOGGER)
    if not any(isinstance(f, _SkipTokenUnused) for f in bolt_logger.filters):
        bolt_logger.addFilter(_SkipTokenUnused())
    app = AsyncApp(
        client=rt.client,
        # Socket Mode needs no signing secret; HTTP mode refuses to start without one (server.py).
        signing_secret=rt.signing_secret or "",
        process_before_response=False,
        request_verification_enabled=True,
        logger=bolt_logger,
    )

    @app.middleware
    async def resolve_dialog(context, body, next_) -> Any:
        """Runtime and the thread's dialog id (or None) into the context, once per request.

        From memory: this runs before the ack, which must not wait on the disk (on a shared database, a thread
        another replica started costs one indexed read, once). Listeners load the dialog itself after the ack."""
        context["runtime"] = rt
        channel, thread_ts = thread_of(body)
        context["dialog_id"] = await rt.dialog_of_thread(channel, thread_ts)
        return await next_()

    listeners.register(app)
    return app
