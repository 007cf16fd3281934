"""One validated settings object for every process, from ``KTA_*`` environment variables and an
optional TOML file (``KTA_CONFIG`` or ``--config``). Environment wins over the file.

A bad value fails at start-up with the key named: ``KTA_GATEWAY_PORT: Expected `int`, got `str```.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from shared import validation
from shared.messages import RiskLimits
from shared.trading.protection import SL_SLIPPAGE_PCT

Port = Annotated[int, Meta(ge=0, le=65535)]


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    env: Literal["dev", "prod"] = "dev"  # dev shows OTPs on the console and in the response
    data_dir: str = "./var"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    # every process's asyncio event loop; uvloop (``pip install 'kta[fast]'``) also gives the gateway httptools'
    # HTTP parser (shared/event_loop.py)
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"

    # NATS
    nats_url: str = "nats://127.0.0.1:4222"
    nats_replicas: Annotated[int, Meta(ge=1, le=5)] = 1
    # this process's NATS identity: a .creds file, or a directory holding <service>.creds (kta up
    # generates one into <data_dir>/nats-auth); empty = connect without credentials
    nats_creds: str = ""

    # gateway
    gateway_host: str = "127.0.0.1"
    gateway_port: Port = 8000
    public_url: str = ""  # how browsers reach the gateway; default http://host:port
    allowed_hosts: str = ""  # more host names the gateway answers to (comma-separated); see gateway/request_checks
    secret_key: str = ""  # Fernet key for secrets at rest; default: generated into data_dir
    session_days: Annotated[int, Meta(ge=1, le=90)] = 7
    otp_ttl_seconds: Annotated[int, Meta(ge=30, le=3600)] = 360
    sse_streams_per_session: Annotated[int, Meta(ge=1, le=100)] = 6  # a browser opens at most 6 per host
    sse_streams_per_user: Annotated[int, Meta(ge=1, le=1000)] = 20
    smtp_host: str = ""
    smtp_port: Port = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "kta@localhost"
    smtp_starttls: bool = True

    # broker (Kite or kite_sim)
    kite_root: str = "http://127.0.0.1:8100"  # REST root, https://api.kite.trade for real Kite
    kite_ws_root: str = "ws://127.0.0.1:8100/ws"  # wss://ws.kite.trade for real Kite
    kite_login_url: str = "http://127.0.0.1:8100/connect/login"  # https://kite.zerodha.com/connect/login

    # kite_sim
    sim_host: str = "127.0.0.1"
    sim_port: Port = 8100
    sim_seed: int = 42
    sim_speed: Annotated[float, Meta(gt=0, le=10_000)] = 1.0
    sim_admin: bool = False  # enables /sim/* fault injection

    # ticker worker: a live user's feed is "stale" after this many seconds without a tick during
    # market hours ("HH:MM-HH:MM" IST weekdays, or "always" for a broker that ticks around the clock)
    feed_stale_seconds: Annotated[float, Meta(ge=0)] = 30.0  # 0 = never judged stale
    # also publish each user's ticks on kta.u.<user>.ticks.<token> (what their read-only NATS key reads);
    # one more publish per tick per user: turn off on a large multi-user install that issues no such keys
    user_ticks: bool = True
    feed_hours: Annotated[str, Meta(pattern=r"^(always|([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d)$")] = \
        "09:15-15:30"

    # strategy worker
    seed_days: Annotated[int, Meta(ge=0, le=60)] = 5
    seed_interval: str = "5minute"
    max_bars: Annotated[int, Meta(ge=10, le=100_000)] = 500
    max_strategies_per_user: Annotated[int, Meta(ge=1, le=1000)] = 25
    max_symbols_per_strategy: Annotated[int, Meta(ge=1, le=1000)] = 50
    max_live_tokens_per_user: Annotated[int, Meta(ge=1, le=9000)] = 500
    backtest_workers: Annotated[int, Meta(ge=1, le=256)] = 1  # processes backtests and sweep trials run in

    # execution worker
    # processes ``kta up`` runs it in: users' partitions (shared/partition.py) are spread over them, so their
    # signals are decided side by side (at most 8: the partitions)
    execution_workers: Annotated[int, Meta(ge=1, le=8)] = 1
    reconcile_interval: Annotated[float, Meta(gt=0)] = 30.0
    positions_interval: Annotated[float, Meta(gt=0)] = 30.0
    cancel_open_on_stop: bool = True
    group_fill_timeout: Annotated[float, Meta(gt=0)] = 10.0
    sl_slippage_pct: Annotated[float, Meta(ge=0, le=10)] = SL_SLIPPAGE_PCT
    default_stop_pct: Annotated[float, Meta(gt=0, le=50)] = 2.0  # Stop (protect): a stop for a position that has none
    # kta squares its intraday (MIS) positions off itself at this IST time on the exchange's clock, before the
    # broker's 15:20 auto square-off, and refuses MIS entries from then on ("" = off: the broker's does it)
    mis_square_off_at: Annotated[str, Meta(pattern=r"^(|([01][0-9]|2[0-3]):[0-5][0-9])$")] = "15:15"
    market_protection: Annotated[int, Meta(ge=-1, le=100)] = -1
    # pre-trade margin check (POST /margins/basket): every multi-leg group, and entries worth at least this
    # many rupees (quantity x price); 0 = before every entry
    margin_check_above: Annotated[float, Meta(ge=0)] = 100_000.0
    risk: RiskLimits = msgspec.field(default_factory=RiskLimits)

    # metrics
    metrics_port: Port = 0  # 0 = off for workers
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so Prometheus can scrape

    @property
    def data_path(self) -> Path:
        p = Path(self.data_dir)
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def gateway_url(self) -> str:
        return self.public_url or f"http://{self.gateway_host}:{self.gateway_port}"


FIELDS = tuple(Settings.__struct_fields__)
ENV_PREFIX = "KTA_"


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIELDS:
        key = env_name(name)
        if key in environ:
            raw = environ[key]
            if name == "risk":
                try:
                    out[name] = msgspec.json.decode(raw)
                except msgspec.DecodeError as e:
                    raise ConfigError(f"{key}: not JSON ({e})") from None
            else:
                out[name] = raw
    unknown = [k for k in environ if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower() not in FIELDS]
    unknown = [k for k in unknown if k not in ("KTA_CONFIG",)]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (known: {', '.join(env_name(f) for f in FIELDS)})")
    return out


def _from_file(path: str | os.PathLike | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None


def provided(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> set[str]:
    """The settings given explicitly (config file or environment) rather than left at their defaults."""
    environ = dict(os.environ if environ is None else environ)
    return set(_from_file(path or environ.get("KTA_CONFIG"))) | set(_from_env(environ))


def load(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from TOML file < environment < explicit overrides (CLI flags)."""
    environ = dict(os.environ if environ is None else environ)
    data = _from_file(path or environ.get("KTA_CONFIG"))
    env_values = _from_env(environ)
    data.update(env_values)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as e:
        text = str(e)
        top = validation.path(e).split(".", 1)[0].split("[", 1)[0]
        if "unknown field" in text:
            top = validation.named(e) or top
        where = env_name(top) if top in env_values or top not in data else f"{top} (config file)"
        raise ConfigError(f"{where or 'settings'}: {text}") from None


def to_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a child process."""
    out = {}
    for name in FIELDS:
        value = getattr(settings, name)
        if isinstance(value, msgspec.Struct):
            out[env_name(name)] = msgspec.json.encode(value).decode()
        elif isinstance(value, bool):
            out[env_name(name)] = "true" if value else "false"
        else:
            out[env_name(name)] = str(value)
    return out
