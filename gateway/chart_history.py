"""The price chart's history: the trading day so far for one instrument, so a dashboard loaded (or an
instrument clicked) mid-session draws the day, not only the ticks heard since.

Points are the day's minute candles from Kite's historical API (the user's own session), each drawn at
its minute's last second with the close; markers are the user's fills of that instrument on that day from
kta's journal, each on its minute's point (a chart marks a point, not an instant between two)."""

from __future__ import annotations

from datetime import date

from gateway.trading_error import TradingError
from shared import ist

MINUTE = 60


def _point_time(epoch_s: float) -> int:
    """The chart point of the minute holding ``epoch_s``: its last second."""
    return int(epoch_s) // MINUTE * MINUTE + MINUTE - 1


async def day_chart(trading, user_id: str, token: int, day: str) -> dict:
    """``{"token", "day", "points": [[epoch_s, rupees], ...], "fills": [[epoch_s, side, qty, rupees], ...]}``;
    ``day`` "" is the day the desk reports on (the exchange's, never this machine's date)."""
    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        raise TradingError(400, f"day: {day!r} is not a date (yyyy-mm-dd)", field="day") from None
    if when is None:
        day = await trading.trading_day(user_id)
        when = date.fromisoformat(day)
    candles = await trading.broker(user_id, "historical_data", token, when, when, "minute")
    points = [[_point_time(ist.parse(c[0][:19].replace("T", " "))), c[4]] for c in candles]
    fills_day, fills = await trading.day_fills(user_id)
    marks = [] if fills_day != day else [
        [_point_time(ist.parse(f["fill_timestamp"])), f["transaction_type"], f["quantity"], f["price"] / 100]
        for f in reversed(fills) if f["instrument_token"] == token and f["fill_timestamp"]]
    return {"token": token, "day": day, "points": points, "fills": marks}
