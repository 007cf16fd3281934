"""The gateway's app factory: ``create_app(settings, bus=None)`` builds a fresh Litestar app (no
module-level app, so every test builds its own, or binds one it built to its own data: ``bind``). With no bus
given, it connects one at start-up."""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.htmx import HTMXPlugin
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from gateway import auth, fragments, kite_connect
from gateway.api import account, alerts, backtests, controls, journal, live, market, scanner, strategies, stream
from gateway.api.deps import DEPENDENCIES
from gateway.api.responses import declare_error_responses
from gateway.error_pages import http_error_handler, internal_error_handler, trading_error_page_handler
from gateway.escape import JsonHtmlEscapeMiddleware
from gateway.headers import add_security_headers
from gateway.guards import LoginRequired, SessionMiddleware, login_required_handler, requires_login
from gateway.backtest_pages import BacktestPagesController
from gateway.book_pages import BookPagesController
from gateway.control_pages import ControlPagesController
from gateway.egress_settings import EgressController
from gateway.option_pages import OptionPagesController
from gateway.order_pages import OrderPagesController
from gateway.live_pages import LivePagesController
from gateway.alert_store import AlertStore
from gateway.logins import LoginStore
from gateway.notifier import Notifier
from gateway.ops import OpsController
from gateway.otp import OtpStore
from gateway.pages import PagesController
from gateway.prefs import PrefsStore
from gateway.settings_pages import SettingsController
from gateway.request_checks import RequestChecks, allowed_hosts, nesting_error_handler, overflow_error_handler
from gateway.services import Services
from gateway.streams import Streams
from gateway.templating import STATIC, compile_all, configure, environment
from gateway.trading import Trading, TradingError
from gateway.users import database
from shared.bus import Bus
from shared.config import Settings
from shared.secrets import vault_for

log = logging.getLogger("kta.gateway")

CONTROLLERS = [auth.AuthController, auth.SessionController, kite_connect.KiteConnectController,
               strategies.StrategiesController, live.LiveController, account.AccountController,
               journal.JournalController, market.MarketController, scanner.ScannerController,
               backtests.BacktestsController, alerts.AlertsController, controls.ControlsController,
               stream.StreamController, EgressController]
PAGES = [PagesController, LivePagesController, BacktestPagesController, SettingsController, BookPagesController,
         ControlPagesController, OptionPagesController, OrderPagesController]


def create_app(settings: Settings, bus: Bus | None = None, *, heartbeat: float = 15.0) -> Litestar:
    static = create_static_files_router(path="/static", directories=[STATIC], opt={"public": True},
                                        include_in_schema=False)
    engine = JinjaTemplateEngine.from_environment(environment())
    configure(engine.engine)
    compile_all(engine.engine)
    app = Litestar(
        route_handlers=[*CONTROLLERS, static, *PAGES, OpsController],
        guards=[requires_login],
        middleware=[RequestChecks(allowed_hosts(settings)), JsonHtmlEscapeMiddleware(), SessionMiddleware()],
        before_send=[add_security_headers(settings)],
        dependencies=DEPENDENCIES,
        exception_handlers={LoginRequired: login_required_handler, TradingError: trading_error_page_handler,
                            HTTPException: http_error_handler, RecursionError: nesting_error_handler, OverflowError: overflow_error_handler,
                            Exception: internal_error_handler},
        template_config=TemplateConfig(instance=engine),
        plugins=[HTMXPlugin()],
        openapi_config=OpenAPIConfig(title="kta gateway", version="0.1.0", path="/schema"),
        on_startup=[_startup],
        on_shutdown=[_shutdown],
        state=State(),
        debug=False,
    )
    declare_error_responses(app)
    bind(app, settings, bus, heartbeat=heartbeat)
    return app


def bind(app: Litestar, settings: Settings, bus: Bus | None = None, *, heartbeat: float = 15.0) -> None:
    """The app's services for ``settings``' data (its stores; the bus given, else its own connected at
    start-up), replacing those of a run that has ended: a test process serves one built app again and again
    (Litestar's registration is ~0.3 CPU-s an app). Its routes, middleware and headers were made from the
    settings it was built with, so those may differ from them only in ``data_dir``."""
    db = database(settings)
    app.state.services = Services(settings=settings, bus=None, logins=LoginStore(db, settings.session_days),
                                  otps=OtpStore(db, settings.otp_ttl_seconds),
                                  alerts=AlertStore(db, vault_for(settings)), prefs=PrefsStore(db))
    app.state.given_bus = bus
    app.state.heartbeat = heartbeat


async def _startup(app: Litestar) -> None:
    services, settings = app.state.services, app.state.services.settings
    b = app.state.given_bus
    if b is None:
        b = await Bus.connect(settings.nats_url, "gateway", replicas=settings.nats_replicas,
                              creds=settings.nats_creds)
        await b.ensure_streams()
    services.bus = b
    services.trading = Trading(b, settings)
    await services.trading.hear_exchange()
    b.spawn(services.trading.clients.preload_instruments(), name="gateway:instruments")
    services.html = fragments.renderer(services.trading.symbol_of)
    services.streams = Streams(b, app.state.heartbeat, services.trading.live_tokens_of, services.logins.active,
                               settings.sse_streams_per_session, settings.sse_streams_per_user)
    services.notifier = await Notifier(b, settings, services.alerts, services.trading).start()
    services.logins.purge_expired()


async def _shutdown(app: Litestar) -> None:
    services = app.state.services
    if services.notifier is not None:
        await services.notifier.close()
    if services.streams is not None:
        await services.streams.close()
    if services.trading is not None:
        await services.trading.close()
    if app.state.given_bus is None and services.bus is not None:
        await services.bus.close()
