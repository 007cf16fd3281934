"""The objects one gateway instance shares between its handlers, kept on ``app.state.services``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection

from gateway import fragments
from gateway.alert_store import AlertStore
from gateway.logins import LoginStore
from gateway.otp import OtpStore
from gateway.prefs import PrefsStore
from gateway.streams import Streams
from gateway.trading import Trading
from shared.bus import Bus
from shared.config import Settings

if TYPE_CHECKING:
    from gateway.notifier import Notifier


@dataclass
class Services:
    settings: Settings
    bus: Bus | None
    logins: LoginStore
    otps: OtpStore
    alerts: AlertStore
    prefs: PrefsStore
    trading: Trading | None = None
    streams: Streams | None = None
    notifier: "Notifier | None" = None
    html: Callable[[str, Any, str], str] = fragments.render  # the dashboard's SSE fragments (tick rows named once trading is up)

    @property
    def secure_cookies(self) -> bool:
        return self.settings.env != "dev"


def services_of(connection: ASGIConnection) -> Services:
    return connection.app.state.services
