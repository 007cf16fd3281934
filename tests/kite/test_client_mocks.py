"""Every official Kite Connect mock response, served over a real socket on 127.0.0.1 and decoded by
the KiteClient method for its endpoint: the Struct must carry every field the mock has (same value),
unless the field is listed below as deliberately ignored, with the reason."""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import msgspec
import pytest

from shared.kite import errors
from shared.kite import models as km
from shared.kite.client import KiteClient
from tests.kite.kit import http_server


ISO_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
T0, T1 = datetime(2019, 12, 4, 9, 15), datetime(2019, 12, 4, 9, 20)
ORDER = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "variety": "regular",
         "product": "CNC", "order_type": "MARKET", "quantity": 1}

# mock file -> (expected method and path, the call, how to read the decoded value back as the mock's data)
CALLS = {
    "generate_session.json": ("POST", "/session/token", lambda k: k.generate_session("rt", "secret")),
    "session_logout.json": ("DELETE", "/session/token", lambda k: k.invalidate_access_token()),
    "profile.json": ("GET", "/user/profile", lambda k: k.profile()),
    "margins.json": ("GET", "/user/margins", lambda k: k.margins()),
    "margins_equity.json": ("GET", "/user/margins/equity", lambda k: k.margins("equity")),
    "margin_commodity.json": ("GET", "/user/margins/commodity", lambda k: k.margins("commodity")),
    "order_response.json": ("POST", "/orders/regular",
                            lambda k: k.place_order("regular", "NSE", "INFY", "BUY", 1, "CNC", "LIMIT", price=1500)),
    "autoslice_response.json": ("POST", "/orders/regular", lambda k: k.place_order(
        "regular", "NFO", "NIFTY24DECFUT", "BUY", 5000, "NRML", "LIMIT", price=24000, autoslice=True)),
    "order_modify.json": ("PUT", "/orders/regular/151220000000000",
                          lambda k: k.modify_order("regular", "151220000000000", price=1501)),
    "order_cancel.json": ("DELETE", "/orders/regular/151220000000000",
                          lambda k: k.cancel_order("regular", "151220000000000")),
    "orders.json": ("GET", "/orders", lambda k: k.orders()),
    "order_info.json": ("GET", "/orders/151220000000000", lambda k: k.order_history("151220000000000")),
    "trades.json": ("GET", "/trades", lambda k: k.trades()),
    "order_trades.json": ("GET", "/orders/151220000000000/trades", lambda k: k.order_trades("151220000000000")),
    "positions.json": ("GET", "/portfolio/positions", lambda k: k.positions()),
    "holdings.json": ("GET", "/portfolio/holdings", lambda k: k.holdings()),
    "holdings_auth.json": ("POST", "/portfolio/holdings/authorise",
                           lambda k: k.authorise_holdings([("INE009A01021", 5)])),
    "convert_position.json": ("PUT", "/portfolio/positions",
                              lambda k: k.convert_position("NSE", "INFY", "BUY", "day", 1, "MIS", "CNC")),
    "instruments_all.csv": ("GET", "/instruments", lambda k: k.instruments()),
    "instruments_nse.csv": ("GET", "/instruments/NSE", lambda k: k.instruments("NSE")),
    "quote.json": ("GET", "/quote", lambda k: k.quote("NSE:INFY")),
    "ohlc.json": ("GET", "/quote/ohlc", lambda k: k.ohlc("NSE:INFY")),
    "ltp.json": ("GET", "/quote/ltp", lambda k: k.ltp("NSE:INFY")),
    "historical_minute.json": ("GET", "/instruments/historical/5633/minute",
                               lambda k: k.historical_data(5633, T0, T1, "minute")),
    "historical_oi.json": ("GET", "/instruments/historical/12517890/minute",
                           lambda k: k.historical_data(12517890, T0, T1, "minute", oi=True)),
    "order_margins.json": ("POST", "/margins/orders", lambda k: k.order_margins([ORDER])),
    "basket_margins.json": ("POST", "/margins/basket", lambda k: k.basket_order_margins([ORDER, ORDER])),
    "virtual_contract_note.json": ("POST", "/charges/orders",
                                   lambda k: k.order_charges([{**ORDER, "order_id": "1", "average_price": 1500}])),
}

# mock file -> {field path: reason it is not kept}
IGNORED = {
    "autoslice_response.json": {
        "children": "place_order returns the parent order id like pykiteconnect; the slices are read from the "
                    "order book (tags autoslice:<parent>), where a refused slice is also visible",
    },
}

# Endpoints kta does not call (no client method), and fixtures other tests consume.
NOT_CLIENT_RESPONSES = {
    **{f: "alerts API: not used by kta" for f in ("alerts_create.json", "alerts_create_ato.json", "alerts_delete.json",
                                                  "alerts_get.json", "alerts_get_one.json", "alerts_history.json",
                                                  "alerts_modify.json")},
    **{f: "GTT API: not used by kta (stops and targets are managed by the execution worker)"
       for f in ("gtt_delete_order.json", "gtt_get_order.json", "gtt_get_orders.json", "gtt_modify_order.json",
                 "gtt_place_order.json")},
    **{f: "mutual funds: out of kta's scope" for f in ("mf_holdings.json", "mf_instruments.csv", "mf_order_cancel.json",
                                                         "mf_order_response.json", "mf_orders.json",
                                                         "mf_orders_info.json", "mf_sip_cancel.json",
                                                         "mf_sip_info.json", "mf_sip_modify.json",
                                                         "mf_sip_place.json", "mf_sips.json")},
    "auctions_list.json": "auction orders: not used by kta",
    "holdings_compact.json": "compact holdings: kta reads the full holdings",
    "holdings_summary.json": "holdings summary: kta computes its own",
    "full_profile.json": "full profile (bank, PAN): kta needs only the profile",
    "trigger_range.json": "trigger range: deprecated endpoint, not used",
    "postback.json": "HTTP postbacks are not used: order updates come over the WebSocket (test below)",
    "ticker_full.json": "decoded by tests/kite/test_codec.py", "ticker_full.packet": "tests/kite/test_codec.py",
    "ticker_ltp.json": "decoded by tests/kite/test_codec.py", "ticker_quote.json": "tests/kite/test_codec.py",
    "ticker_quote.packet": "tests/kite/test_codec.py",
    "README.md": "documentation",
}


def test_every_mock_file_is_accounted_for(kite_mocks):
    files = {p.name for p in kite_mocks.iterdir()}
    assert files, f"no mocks at {kite_mocks}"
    assert files == set(CALLS) | set(NOT_CLIENT_RESPONSES), files ^ (set(CALLS) | set(NOT_CLIENT_RESPONSES))


class Served:
    name = ""


@pytest.fixture(scope="module")
def mock_server(kite_mocks):
    served = Served()

    def respond(handler):
        body = (kite_mocks / served.name).read_bytes()
        return 200, "text/csv" if served.name.endswith(".csv") else "application/json", body

    with http_server(respond) as (root, seen):
        yield root, seen, served, kite_mocks


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_mock_decodes_without_loss(name, mock_server):
    root, seen, served, mocks = mock_server
    served.name = name
    method, path, call = CALLS[name]
    async with KiteClient("api_key", "access_token", root=root) as kite:
        seen.clear()
        value = await call(kite)
    assert [(m, p.split("?")[0]) for _, m, p in seen] == [(method, path)]

    if name.endswith(".csv"):
        rows = (mocks / name).read_text().splitlines()
        assert len(value) == len(rows) - 1 > 0
        _same_instruments(value, rows)
        return
    data = json.loads((mocks / name).read_text())["data"]
    if name.startswith("historical"):
        got = [[c.date, c.open, c.high, c.low, c.close, c.volume] + ([] if c.oi is None else [c.oi]) for c in value]
        _same(got, data["candles"], "candles", {})
        return
    if isinstance(value, str):  # an order id, or the request id of a holdings authorisation
        got = {"request_id" if name == "holdings_auth.json" else "order_id": value}
    elif isinstance(value, bool):
        got = value
    else:
        got = msgspec.to_builtins(value)
    _same(got, data, "data", IGNORED.get(name, {}))


def _same(got, want, where: str, ignored: dict[str, str]) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: expected an object, decoded {got!r}"
        for key, value in want.items():
            if key in ignored:
                continue
            assert key in got, f"{where}.{key} is in the mock but the Struct drops it"
            _same(got[key], value, f"{where}.{key}", ignored)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]", ignored)
    elif isinstance(got, (datetime, str)) and isinstance(want, str) and ISO_STAMP.match(want):
        got = got if isinstance(got, datetime) else datetime.fromisoformat(got)
        assert got == datetime.strptime(want, "%Y-%m-%dT%H:%M:%S%z"), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want and (want is None) == (got is None), f"{where}: decoded {got!r}, mock has {want!r}"


def _same_instruments(value: list[km.Instrument], lines: list[str]) -> None:
    import csv

    for inst, row in zip(value, csv.DictReader(lines)):
        got = msgspec.to_builtins(inst)
        assert set(row) == set(got), set(row) ^ set(got)
        for key, text in row.items():
            v = inst.__getattribute__(key)
            if isinstance(v, date):
                assert v == date.fromisoformat(text)
            elif v is None:
                assert text == ""
            elif isinstance(v, (int, float)):
                assert v == float(text or 0), (key, v, text)
            else:
                assert v == text


async def test_a_bad_instrument_row_is_a_data_error_naming_the_row_and_field():
    csv_text = ("instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
                "instrument_type,segment,exchange\n"
                "408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE\n"
                "12345,48,NIFTY26DECFUT,NIFTY,0.0,2026-12-29,0.0,0.1,lots,FUT,NFO-FUT,NFO\n")
    with http_server(lambda handler: (200, "text/csv", csv_text.encode())) as (root, _):
        async with KiteClient("api_key", "access_token", root=root) as kite:
            with pytest.raises(errors.DataException, match=r"bad row: .*\$\[1\]\.lot_size"):
                await kite.instruments()


async def test_order_updates_of_the_postback_shape_decode_into_orders(kite_mocks):
    """The WebSocket's order updates carry the postback payload; the Order Struct keeps every field
    except the postback envelope's own (app_id, checksum, user_id, unfilled_quantity)."""
    data = json.loads((kite_mocks / "postback.json").read_text())
    order = km.convert(data, km.Order)
    envelope = {"app_id": "the app's id, known", "checksum": "postback authentication, unused on the WebSocket",
                "user_id": "the update is routed per user already", "unfilled_quantity": "= pending_quantity"}
    _same(msgspec.to_builtins(order), data, "postback", envelope)
    assert order.pending_quantity == data["unfilled_quantity"]


ERROR_BODIES = [  # Kite's error envelope, with the HTTP status it comes with
    (403, "TokenException", "Incorrect `api_key` or `access_token`.", errors.TokenException),
    (400, "InputException", "Invalid `quantity`.", errors.InputException),
    (400, "MarginException", "Insufficient funds. Required margin is 228365.92 but available margin is 228358.50.",
     errors.MarginException),
    (500, "OrderException", "Order not found.", errors.OrderException),
    (400, "HoldingException", "Insufficient holdings.", errors.HoldingException),
    (403, "PermissionException", "Insufficient permission for that call.", errors.PermissionException),
    (502, "DataException", "Couldn't parse the JSON response received from the exchange.", errors.DataException),
    (503, "NetworkException", "Couldn't connect to the OMS.", errors.NetworkException),
    (500, "SomethingNew", "A type kta has never seen.", errors.GeneralException),
]


@pytest.mark.parametrize("status,error_type,message,kind", ERROR_BODIES)
async def test_error_envelopes_map_to_typed_exceptions(status, error_type, message, kind):
    body = json.dumps({"status": "error", "message": message, "data": None, "error_type": error_type}).encode()
    with http_server(lambda h: (status, "application/json", body)) as (root, seen):
        async with KiteClient("k", "t", root=root) as kite:
            with pytest.raises(errors.KiteError) as e:
                await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "CNC", "LIMIT", price=1, tag="t1")
    if kind in (errors.NetworkException, errors.DataException):  # the OMS may have it: looked up, never re-sent
        assert type(e.value) is errors.OrderUnknown and message in e.value.message and e.value.tag == "t1"
        assert e.value.status == status and e.value.error_type == error_type
        assert [m for _, m, _ in seen].count("POST") == 1 and seen[1][1:] == ("GET", "/orders")
        return
    assert type(e.value) is kind and e.value.message == message and e.value.status == status
    assert e.value.error_type == error_type and message in str(e.value)
    assert [m for _, m, _ in seen] == ["POST"]  # a refused order is never retried
