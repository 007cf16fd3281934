from datetime import date

import msgspec
import pytest

from shared import messages as m
from shared.messages import to_paise, to_rupees


def sample(cls):
    """One valid instance of every message type, built from its fields' types."""
    samples = {
        m.Tick: m.Tick(instrument_token=256265, mode="full", tradable=False, last_price=24500.05,
                       ohlc=m.OHLC(1, 2, 0.5, 1.5), depth=m.Depth(buy=[(5, 1.1, 2)], sell=[]),
                       exchange_timestamp=1_700_000_000, received_at=1),
        m.Bar: m.Bar(instrument_token=1, interval="5minute", start=60, open=1, high=2, low=0.5, close=1.5, volume=10),
        m.Leg: m.Leg(exchange=m.Exchange.NFO, tradingsymbol="NIFTY26DEC24500CE", instrument_token=9,
                     transaction_type=m.TransactionType.SELL, quantity=65, lot_size=65, option_type="CE"),
        m.Signal: m.Signal(id="s1", user_id="DEMO01", strategy_id="ema-1", strategy="ema_crossover",
                           exchange=m.Exchange.NSE, tradingsymbol="INFY", instrument_token=408065,
                           transaction_type=m.TransactionType.BUY, quantity=1, stop_loss=150000),
        m.OrderRequest: m.OrderRequest(user_id="DEMO01", exchange=m.Exchange.NSE, tradingsymbol="INFY",
                                       transaction_type=m.TransactionType.BUY, order_type=m.OrderType.SL,
                                       quantity=1, product=m.Product.MIS, price=100, trigger_price=101, tag="kab12"),
        m.OrderEvent: m.OrderEvent(user_id="DEMO01", order_id="1", status=m.OrderStatus.OPEN),
        m.StrategyOutcome: m.StrategyOutcome(user_id="DEMO01", strategy_id="ema-1", kind="filled", seq=3,
                                             instrument_token=408065, transaction_type=m.TransactionType.SELL,
                                             quantity=5, price=150005, position=-5, trade_id="t1"),
        m.BrokerOrderUpdate: m.BrokerOrderUpdate(user_id="DEMO01", received_at=1, order={"order_id": "1"}),
        m.Position: m.Position(tradingsymbol="INFY", exchange="NSE", quantity=-3, pnl=-1250),
        m.RiskLimits: m.RiskLimits(),
        m.RiskState: m.RiskState(user_id="DEMO01", ts=1, state=m.KillSwitchState.HALTED),
        m.BrokerSession: m.BrokerSession(user_id="DEMO01", api_key="k", access_token_enc="x"),
        m.BrokerEvent: m.BrokerEvent(user_id="DEMO01", kind="reconnected", ts=1, gap_start=1, gap_end=2),
        m.WorkerStatus: m.WorkerStatus(service="ticker", instance="a"),
        m.Alert: m.Alert(user_id="DEMO01", kind="kill_switch", severity="critical", title="Kill switch HALTED",
                         detail="day loss ₹5,000.00 reached the limit", key="ks:2026-12-01"),
        m.BacktestSpec: m.BacktestSpec(strategy="ema_crossover", symbols=["INFY"], start=date(2025, 1, 1),
                                       end=date(2025, 3, 31), params={"fast": 9}),
        m.BacktestProgress: m.BacktestProgress(user_id="DEMO01", backtest_id="bt1", state="running", done=0.5),
        m.Ok: m.Ok(data={"x": 1}),
        m.Error: m.Error(code="bad", message="no", field="params.fast"),
    }
    if cls in samples:
        return samples[cls]
    if cls is m.SignalGroup:
        return m.SignalGroup(id="g", user_id="DEMO01", strategy_id="ic", strategy="iron_condor",
                             structure="iron_condor", underlying="NIFTY", legs=[sample(m.Leg)])
    if cls is m.SweepSpec:
        return m.SweepSpec(base=sample(m.BacktestSpec), grid={"fast": [5, 9]})
    if cls is m.PositionSnapshot:
        guard = m.Guard(kind="gtt", id="7", status="active", quantity=3, stop=140000, target=160000)
        return m.PositionSnapshot(user_id="DEMO01", ts=1, positions=[sample(m.Position)], day_pnl=5, protection=[
            m.ProtectionStatus(strategy_id="ema-1", exchange="NSE", tradingsymbol="INFY", product="CNC", quantity=3,
                               guards=[guard], covered=3, state="protected")])
    # commands: fill required fields
    required = {"strategy": "ema_crossover", "strategy_id": "x", "params": {"fast": 5}, "tokens": [256265],
                "limits": m.RiskLimits(), "id": "261125000000001", "tag": "K0123456789abcdE0000",
                "exchange": m.Exchange.NSE, "tradingsymbol": "INFY", "transaction_type": m.TransactionType.BUY,
                "quantity": 5, "service": "execution", "instance": "w1", "partitions": [3]}
    if cls is m.RunBacktest:
        return cls(spec=sample(m.BacktestSpec))
    if cls is m.Reads:
        return cls(commands=[m.encode(m.GetPositions()), m.encode(m.GetTrades(limit=3))])
    if cls is m.RunSweep:
        return cls(spec=sample(m.SweepSpec))
    kwargs = {f: required[f] for f in cls.__struct_fields__ if f in required and f not in cls.__struct_defaults__}
    return cls(**kwargs)


@pytest.mark.parametrize("cls", m.ALL_MESSAGE_TYPES, ids=lambda c: c.__name__)
def test_every_message_round_trips(cls):
    obj = sample(cls)
    data = m.encode(obj)
    assert msgspec.msgpack.decode(data, type=cls) == obj


@pytest.mark.parametrize("cls", m.Command.__args__, ids=lambda c: c.__name__)
def test_one_decoder_per_subject_knows_the_command(cls):
    obj = sample(cls)
    assert m.command_decoder.decode(m.encode(obj)) == obj


def test_signal_union_and_reply_union():
    for obj in (sample(m.Signal), sample(m.SignalGroup)):
        assert m.signal_decoder.decode(m.encode(obj)) == obj
    for obj in (sample(m.Ok), sample(m.Error)):
        assert m.reply_decoder.decode(m.encode(obj)) == obj


def test_validation_names_the_field():
    bad = msgspec.msgpack.encode({"type": "signal", "id": "s", "user_id": "demo.*", "strategy_id": "a",
                                  "strategy": "x", "exchange": "NSE", "tradingsymbol": "INFY",
                                  "instrument_token": 1, "transaction_type": "BUY", "quantity": 1})
    with pytest.raises(msgspec.ValidationError, match="user_id"):
        m.signal_decoder.decode(bad)
    with pytest.raises(msgspec.ValidationError, match="max_length|tag"):
        m.OrderRequest(user_id="DEMO01", exchange="NSE", tradingsymbol="X", transaction_type="BUY",
                       order_type="LIMIT", quantity=1, product="MIS", tag="x" * 21).__class__
        msgspec.convert({"user_id": "DEMO01", "exchange": "NSE", "tradingsymbol": "X", "transaction_type": "BUY",
                         "order_type": "LIMIT", "quantity": 1, "product": "MIS", "tag": "x" * 21}, m.OrderRequest)


def test_money_is_exact():
    assert to_paise(24500.05) == 2450005
    assert to_paise("0.1") + to_paise("0.2") == to_paise("0.3")
    assert str(to_rupees(2450005)) == "24500.05"
    assert to_paise(to_rupees(-1999)) == -1999


def test_order_status_parsing():
    assert m.OrderStatus.parse("TRIGGER PENDING") is m.OrderStatus.TRIGGER_PENDING
    assert m.OrderStatus.parse("CANCELLED AMO") is m.OrderStatus.CANCELLED
    assert m.OrderStatus.COMPLETE.is_terminal and not m.OrderStatus.OPEN.is_terminal
