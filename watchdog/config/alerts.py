"""Schema of the ``alerts`` section: notification channels, rate limits, retries, heartbeat.

``_CHANNELS`` maps each channel ``type`` tag to its model; error translation uses it too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from watchdog.config.base import _Problem, _Strict
from watchdog.config.durations import Duration, PositiveDuration, _timeout_within_interval
from watchdog.config.secrets import _secret_fields
from watchdog.config.urls import check_http_url


class _Channel(_Strict):
    name: str | None = None
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _url_usable(self) -> _Channel:
        _check_url(getattr(self, "url", None))
        return self


def _check_url(url: object) -> None:
    value = url.get_secret_value() if isinstance(url, SecretStr) else url
    if isinstance(value, str):
        try:
            check_http_url(value)
        except _Problem as exc:
            raise _Problem(str(exc), exc.fix, "url") from None


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: str


class SlackChannel(_Channel):
    type: Literal["slack"]
    url: SecretStr = Field(repr=False)  # the incoming-webhook URL is itself the secret

    _fold = _secret_fields("url")


class NtfyChannel(_Channel):
    type: Literal["ntfy"]
    url: str  # server and topic: https://ntfy.sh/my-topic
    token: SecretStr | None = Field(default=None, repr=False)

    _fold = _secret_fields("token")


class PagerDutyChannel(_Channel):
    type: Literal["pagerduty"]
    routing_key: SecretStr = Field(repr=False)
    url: str = "https://events.pagerduty.com/v2/enqueue"

    _fold = _secret_fields("routing_key")


class AlertmanagerChannel(_Channel):
    type: Literal["alertmanager"]
    url: str  # base URL; alerts are POSTed to {url}/api/v2/alerts


Channel = Annotated[
    WebhookChannel | SlackChannel | NtfyChannel | PagerDutyChannel | AlertmanagerChannel,
    Field(discriminator="type"),
]

_CHANNELS: dict[str, type[BaseModel]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "ntfy": NtfyChannel,
    "pagerduty": PagerDutyChannel,
    "alertmanager": AlertmanagerChannel,
}


class Heartbeat(_Strict):
    url: SecretStr = Field(repr=False)  # healthchecks.io ping URLs embed their secret
    interval: PositiveDuration = 60.0
    timeout: PositiveDuration = 10.0

    _fold = _secret_fields("url")

    @model_validator(mode="after")
    def _timeout_fits(self) -> Heartbeat:
        _check_url(self.url)
        _timeout_within_interval(self.timeout, self.interval)
        return self


class Alerts(_Strict):
    channels: list[Channel] = []  # noqa: RUF012 - pydantic copies a default per instance
    renotify: Duration = 3600.0  # 0: never re-notify
    rate_limit: int = Field(30, ge=1)  # notifications per channel per rate_window
    rate_window: PositiveDuration = 3600.0
    retry_max: int = Field(5, ge=0, le=50)
    retry_backoff: PositiveDuration = 2.0
    heartbeat: Heartbeat | None = None
