"""The Slack sink: posts alerts with slack_sdk's WebClient (chat.postMessage)."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from sqlalchemy.engine import Engine

from mlp_orchestration.alerts.alert import Alert
from mlp_orchestration.alerts.blocks import render_message, render_text
from mlp_orchestration.alerts.dedup import SendStatus
from mlp_orchestration.alerts.sink import AlertSink, Clock, Delivery
from mlp_orchestration.errors import ConfigurationError
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

# Slack error codes meaning the token itself is unusable, so no retry can fix them.
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)

_HINTS = {
    "missing_scope": "the token lacks the chat:write scope; add it to the Slack app and reinstall",
    "channel_not_found": "check MLP_SLACK_CHANNEL",
    "not_in_channel": "invite the Slack app to the channel named by MLP_SLACK_CHANNEL",
    "is_archived": "the channel is archived; set MLP_SLACK_CHANNEL to an active channel",
    "ratelimited": "Slack still rate-limited the request after the retries",
}
_AUTH_HINT = "Slack rejected the token; set a valid bot token in MLP_SLACK_TOKEN"


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retry HTTP 429 after Slack's Retry-After, unless that wait exceeds ``max_wait_s``.

    The built-in handler sleeps for the Retry-After value plus up to one second of jitter,
    however long that is. A sensor tick or an asset must not block for minutes, so a longer
    wait, or a Retry-After that is not a number of seconds, ends the send as failed instead.
    """

    def __init__(self, max_retry_count: int, max_wait_s: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        wait_s = _retry_after_s(response.headers if response is not None else {})
        if wait_s is None or wait_s > self.max_wait_s:
            logger.warning(
                "Slack rate-limited %s with Retry-After %s; not retrying because the wait "
                "exceeds %ss or is not a number of seconds",
                request.url,
                "missing" if wait_s is None else f"{wait_s}s",
                self.max_wait_s,
            )
            return False
        logger.warning("Slack rate-limited %s; retrying after %ss", request.url, wait_s)
        return True


def _retry_after_s(headers: dict[str, Any]) -> int | None:
    for name, values in headers.items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) else values
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


class SlackSink(AlertSink):
    """Posts each alert to one Slack channel as Block Kit blocks with a text fallback.

    Retries HTTP 429 after Retry-After, connection errors and HTTP 500/503 responses, up to
    ``max_retries`` times per send in total. A rejected token (``invalid_auth``,
    ``token_revoked``, …) or any other error ends as a ``failed`` result that is logged,
    counted and recorded.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        token: str,
        channel: str,
        dedup_window_s: float,
        base_url: str = "https://slack.com/api/",
        clock: Clock = utcnow,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        max_retry_wait_s: float = 30.0,
    ) -> None:
        """Create a sink; nothing is sent until ``send``.

        Args:
            engine: warehouse engine holding ``alert_log``.
            token: Slack bot token with the chat:write scope.
            channel: channel name (``#risk-model-alerts``) or id.
            dedup_window_s: seconds within which an identical alert is sent once.
            base_url: Slack Web API base URL.
            clock: returns the current aware UTC time.
            timeout_s: seconds to wait for one HTTP response.
            max_retries: retries of one send; rate-limit, connection and server-error retries
                share this count because slack_sdk keeps one attempt counter per request.
            max_retry_wait_s: longest Retry-After, in seconds, that is waited out.

        Raises:
            ConfigurationError: the token, channel or base URL is empty or malformed.
        """
        if not token.strip():
            raise ConfigurationError(
                "MLP_SLACK_TOKEN is set but empty; set a bot token or unset it"
            )
        if not channel.strip():
            raise ConfigurationError("MLP_SLACK_CHANNEL is empty; name a channel such as #alerts")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"MLP_SLACK_BASE_URL {base_url!r} is not an http(s) URL; use https://slack.com/api/"
            )
        super().__init__(engine, channel=channel, dedup_window_s=dedup_window_s, clock=clock)
        self.base_url = base_url
        self._client = WebClient(
            token=token,
            base_url=base_url,
            timeout=timeout_s,  # type: ignore[arg-type]  # urllib accepts float seconds
            retry_handlers=_retry_handlers(max_retries, max_retry_wait_s),
        )

    def render_text(self, alert: Alert) -> str:
        return render_text(alert)

    def _deliver(self, alert: Alert) -> Delivery:
        message = render_message(alert)
        try:
            response = self._client.chat_postMessage(
                channel=self.channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            return self._failed(alert, _describe_api_error(exc))
        except (SlackClientError, OSError) as exc:
            # urllib's URLError and socket timeouts are OSErrors, raised once retries run out.
            return self._failed(alert, f"cannot reach the Slack API at {self.base_url}: {exc}")

        metadata = response.get("response_metadata") or {}
        if metadata.get("warnings"):
            logger.warning(
                "Slack accepted alert %s for %s with warnings %s",
                alert.kind.value,
                alert.model or "-",
                metadata["warnings"],
            )
        logger.info(
            "Alert %s for %s sent to %s (ts %s)",
            alert.kind.value,
            alert.model or "-",
            self.channel,
            response.get("ts"),
        )
        return Delivery(SendStatus.SENT, ts=response.get("ts"), truncated=message.truncated)

    def _failed(self, alert: Alert, error: str) -> Delivery:
        logger.error(
            "Alert %s for %s was not sent to Slack channel %s: %s",
            alert.kind.value,
            alert.model or "-",
            self.channel,
            error,
        )
        return Delivery(SendStatus.FAILED, error=error)


def _retry_handlers(max_retries: int, max_retry_wait_s: float) -> list[RetryHandler]:
    return [
        BoundedRateLimitRetryHandler(max_retry_count=max_retries, max_wait_s=max_retry_wait_s),
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=max_retries),
    ]


def _describe_api_error(exc: SlackApiError) -> str:
    response = exc.response
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or "unknown_error")
    if len(code) > 200:
        code = code[:200] + "…"
    description = f"{code} (HTTP {response.status_code})"
    hint = _AUTH_HINT if code in AUTH_ERRORS else _HINTS.get(code)
    return f"{description}: {hint}" if hint else description
