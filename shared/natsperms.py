"""Who may publish and subscribe to what on the bus: the one permission table of kta.

Each process connects as its own NATS identity (``shared/natsauth.py`` issues them) and the server
enforces this table, so a compromised or buggy process cannot act for another: only the strategy
worker publishes signals, only the execution worker publishes orders, outcomes, positions and risk,
only the ticker worker publishes ticks and broker updates; the gateway (the process facing the
internet) sends commands and reads, but cannot publish any of those.

A role names plain subjects plus the JetStream streams and KV buckets it reads or writes; the
JetStream API subjects those need are derived here (``$JS.API.CONSUMER.*.<stream>`` and so on), so
a role cannot delete, purge or reconfigure what it does not own. Every identity gets a private
inbox prefix (``_INBOX.<identity>``): replies to one process are invisible to the others."""

from __future__ import annotations

from dataclasses import dataclass

from shared import subjects
from shared.natsjwt import Permissions

A = subjects.ANY  # every user (or instrument, service, verb) in a pattern
KV_TICKER = "kta_ticker"  # the ticker worker's subscriptions per user (restored on restart)
KV_LEASES = "kta_leases"  # partition leases (shared/partition.py)
KV_SESSIONS = subjects.KV_BROKER_SESSIONS
KV_BUDGET = subjects.KV_RATE_BUDGET  # Kite's rate budget per api_key, claimed by every process calling Kite
BUCKETS = (KV_SESSIONS, KV_TICKER, KV_LEASES, KV_BUDGET, subjects.KV_STATE)


@dataclass(frozen=True)
class Role:
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()  # streams (consumers, message gets)
    kv_read: tuple[str, ...] = ()
    kv_write: tuple[str, ...] = ()
    updates_streams: bool = False  # may change a stream's configuration (workers); anyone may create


def _cmds(*services: str) -> tuple[str, ...]:
    return tuple(subjects.cmd_wildcard(s) for s in services)


ROLES: dict[str, Role] = {
    "gateway": Role(
        publish=(subjects.commands(A), subjects.service_health(A), subjects.broker_events(A), subjects.alerts(A)),
        subscribe=(subjects.everything(A), subjects.ticks(A), subjects.service_status(A)),
        reads=(subjects.STREAM_ALERTS,),  # the notifier delivers alerts
        kv_read=(KV_SESSIONS, KV_BUDGET), kv_write=(KV_SESSIONS, KV_BUDGET)),
    "ticker": Role(
        publish=(subjects.ticks(A), subjects.user_ticks(A, A), subjects.order_updates(A), subjects.broker_events(A),
                 subjects.alerts(A), subjects.status(A)),
        subscribe=_cmds("ticker", "live"),
        kv_read=(KV_SESSIONS, KV_TICKER), kv_write=(KV_SESSIONS, KV_TICKER), updates_streams=True),
    "strategy": Role(
        publish=(subjects.signals(A), subjects.ALL_BARS, subjects.status(A), *_cmds("ticker"), subjects.alerts(A),
                 subjects.backtests(A), subjects.cmd(A, "execution", "strategy_positions")),
        subscribe=(subjects.ticks(A), *_cmds("strategy", "backtest", "live"), subjects.risk(A),
                   subjects.broker_events(A)),
        reads=(subjects.STREAM_OUTCOMES,),
        kv_read=(KV_SESSIONS, KV_LEASES, KV_BUDGET), kv_write=(KV_LEASES, KV_BUDGET), updates_streams=True),
    "execution": Role(
        publish=(subjects.orders(A), subjects.outcomes(A), subjects.positions(A), subjects.risk(A), subjects.status(A),
                 *_cmds("ticker"), subjects.broker_events(A), subjects.alerts(A)),
        subscribe=(subjects.ticks(A), *_cmds("execution", "risk", "journal", "live")),
        reads=(subjects.STREAM_SIGNALS, subjects.STREAM_BROKER),
        kv_read=(KV_SESSIONS, KV_LEASES, KV_BUDGET), kv_write=(KV_SESSIONS, KV_LEASES, KV_BUDGET),
        updates_streams=True),
    # health probes: `kta up`'s supervisor and the containers' health checks
    "ops": Role(publish=(subjects.service_health(A),)),
    # the operator's command-line tools beside a running stack (kta backtest --fetch reads the user's Kite session)
    "cli": Role(kv_read=(KV_SESSIONS, KV_BUDGET), kv_write=(KV_BUDGET,)),
}
SERVICES = ("gateway", "ticker", "strategy", "execution")



def inbox_prefix(identity: str) -> str:
    return f"_INBOX.{identity}"


def _stream_names() -> list[str]:
    return [*subjects.STREAMS, *(f"KV_{b}" for b in BUCKETS)]


def _reading(stream: str) -> list[str]:
    api = "$JS.API"
    return [f"{api}.STREAM.INFO.{stream}", f"{api}.CONSUMER.CREATE.{stream}", f"{api}.CONSUMER.CREATE.{stream}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{stream}.*", f"{api}.CONSUMER.INFO.{stream}.*",
            f"{api}.CONSUMER.DELETE.{stream}.*", f"{api}.CONSUMER.MSG.NEXT.{stream}.*",
            f"{api}.DIRECT.GET.{stream}", f"{api}.DIRECT.GET.{stream}.>", f"{api}.STREAM.MSG.GET.{stream}",
            f"$JS.ACK.{stream}.>", f"$JS.FC.{stream}.>"]


def permissions(identity: str) -> Permissions:
    """The server-side permissions of a service identity (``gateway``, ``ticker``, …, ``ops``)."""
    if identity == "admin":
        return Permissions(publish=(">",), subscribe=(">",), responses=True)
    role = ROLES[identity]
    pub = list(role.publish)
    sub = [*role.subscribe, f"{inbox_prefix(identity)}.>"]
    if identity in SERVICES:
        pub += [subjects.service_status(identity), subjects.service_health(identity), subjects.dlq(identity),
                subjects.partitions(identity), "$JS.API.INFO", "$JS.API.STREAM.NAMES"]
        sub += [subjects.service_health(identity), subjects.partitions(identity)]  # its copies' hand-overs
        for stream in _stream_names():
            pub += [f"$JS.API.STREAM.CREATE.{stream}", f"$JS.API.STREAM.INFO.{stream}"]
            if role.updates_streams:
                pub.append(f"$JS.API.STREAM.UPDATE.{stream}")
    for stream in [*role.reads, *(f"KV_{b}" for b in role.kv_read)]:
        pub += _reading(stream)
    pub += [f"$KV.{b}.>" for b in role.kv_write]
    return Permissions(publish=tuple(dict.fromkeys(pub)), subscribe=tuple(dict.fromkeys(sub)),
                       responses=identity in SERVICES)


def reader_permissions(user_id: str) -> Permissions:
    """A trader's read-only key: subscribe to their own ticks, signals, orders, positions, risk,
    outcomes and alerts; publish nothing."""
    from shared.reader import SUBJECTS

    subjects.user(user_id)  # a bad id is refused, never turned into a pattern
    return Permissions(subscribe=tuple(subject(user_id) for subject, _ in SUBJECTS))
