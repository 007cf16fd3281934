"""The sim's instrument universe, regenerated relative to the sim date: indices (Kite's real tokens),
NSE equities (real tokens where known), index futures, and weekly + monthly option chains for NIFTY,
BANKNIFTY and SENSEX at the real strike steps, lot sizes, tick sizes and expiry weekdays, with Kite's
tradingsymbol formats (kite-connect.md §8)."""

from __future__ import annotations

import calendar
import csv
import io
import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.market_calendar import CALENDAR, MarketCalendar

SEG = {"NSE": 1, "NFO": 2, "BSE": 4, "BFO": 5, "INDICES": 9}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKLY_MONTH = "123456789OND"
CSV_COLUMNS = ["instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry", "strike",
               "tick_size", "lot_size", "instrument_type", "segment", "exchange"]


@dataclass
class Instrument:
    instrument_token: int
    tradingsymbol: str
    name: str
    exchange: str
    segment: str
    instrument_type: str = "EQ"
    tick_size: float = 0.05
    lot_size: int = 1
    expiry: date | None = None
    strike: float = 0.0
    underlying: str = ""  # key of the price process that drives it
    freeze_quantity: int = 0
    base_price: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def exchange_token(self) -> int:
        return self.instrument_token >> 8

    @property
    def tradable(self) -> bool:
        return self.segment != "INDICES"

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass(frozen=True)
class Underlying:
    name: str  # name column of derivatives (NIFTY)
    index_symbol: str  # NIFTY 50
    token: int
    exchange: str  # NSE / BSE
    deriv_exchange: str  # NFO / BFO
    base_price: float
    step: int
    lot_size: int
    freeze_quantity: int
    weekly: bool
    expiry_weekday: int  # 1 = Tuesday, 3 = Thursday
    annual_vol: float


INDICES = [
    Underlying("NIFTY", "NIFTY 50", 256265, "NSE", "NFO", 26000.0, 50, 65, 1800, True, 1, 0.13),
    Underlying("BANKNIFTY", "NIFTY BANK", 260105, "NSE", "NFO", 58000.0, 100, 30, 900, False, 1, 0.16),
    Underlying("FINNIFTY", "NIFTY FIN SERVICE", 257801, "NSE", "NFO", 27500.0, 50, 60, 1800, False, 1, 0.15),
    Underlying("SENSEX", "SENSEX", 265, "BSE", "BFO", 85000.0, 100, 20, 1000, True, 3, 0.13),
]
OTHER_INDICES = [("INDIA VIX", 264969, 13.5)]

# (tradingsymbol, name, token, base price, annual vol); tokens are Kite's where known.
EQUITIES = [
    ("RELIANCE", "RELIANCE INDUSTRIES", 738561, 1480.0), ("INFY", "INFOSYS", 408065, 1560.0),
    ("TCS", "TATA CONSULTANCY SERV", 2953217, 3150.0), ("HDFCBANK", "HDFC BANK", 341249, 990.0),
    ("ICICIBANK", "ICICI BANK", 1270529, 1390.0), ("SBIN", "STATE BANK OF INDIA", 779521, 960.0),
    ("ITC", "ITC", 424961, 405.0), ("LT", "LARSEN & TOUBRO", 2939649, 3950.0),
    ("AXISBANK", "AXIS BANK", 1510401, 1230.0), ("KOTAKBANK", "KOTAK MAHINDRA BANK", 492033, 2100.0),
    ("HINDUNILVR", "HINDUSTAN UNILEVER", 356865, 2450.0), ("BHARTIARTL", "BHARTI AIRTEL", 2714625, 2050.0),
    ("BAJFINANCE", "BAJAJ FINANCE", 81153, 1020.0), ("MARUTI", "MARUTI SUZUKI INDIA", 2815745, 15900.0),
    ("ASIANPAINT", "ASIAN PAINTS", 60417, 2780.0), ("HCLTECH", "HCL TECHNOLOGIES", 1850625, 1620.0),
    ("WIPRO", "WIPRO", 969473, 248.0), ("SUNPHARMA", "SUN PHARMACEUTICAL IND", 857857, 1790.0),
    ("TITAN", "TITAN COMPANY", 897537, 3850.0), ("ULTRACEMCO", "ULTRATECH CEMENT", 2952193, 11800.0),
    ("NESTLEIND", "NESTLE INDIA", 4598529, 1260.0), ("POWERGRID", "POWER GRID CORP", 3834113, 285.0),
    ("NTPC", "NTPC", 2977281, 335.0), ("ONGC", "OIL AND NATURAL GAS CORP", 633601, 245.0),
    ("COALINDIA", "COAL INDIA", 5215745, 385.0), ("TECHM", "TECH MAHINDRA", 3465729, 1450.0),
    ("M&M", "MAHINDRA & MAHINDRA", 519937, 3700.0), ("TATAMOTORS", "TATA MOTORS", 884737, 690.0),
    ("ADANIENT", "ADANI ENTERPRISES", 6401, 2450.0), ("ADANIPORTS", "ADANI PORTS AND SEZ", 3861249, 1480.0),
    ("JSWSTEEL", "JSW STEEL", 3001089, 1160.0), ("GRASIM", "GRASIM INDUSTRIES", 315393, 2750.0),
    ("HINDALCO", "HINDALCO INDUSTRIES", 348929, 820.0), ("DRREDDY", "DR. REDDY'S LABORATORIES", 225537, 1260.0),
    ("CIPLA", "CIPLA", 177665, 1530.0), ("BRITANNIA", "BRITANNIA INDUSTRIES", 140033, 5900.0),
    ("EICHERMOT", "EICHER MOTORS", 232961, 6900.0), ("HEROMOTOCO", "HERO MOTOCORP", 345089, 5600.0),
    ("BAJAJFINSV", "BAJAJ FINSERV", 4268801, 2050.0), ("BAJAJ-AUTO", "BAJAJ AUTO", 4267265, 8900.0),
    ("INDUSINDBK", "INDUSIND BANK", 1346049, 760.0), ("DIVISLAB", "DIVI'S LABORATORIES", 2800641, 6500.0),
    ("APOLLOHOSP", "APOLLO HOSPITALS ENTER.", 40193, 7500.0), ("BPCL", "BHARAT PETROLEUM CORP", 134657, 345.0),
    ("SBILIFE", "SBI LIFE INSURANCE CO", 5582849, 1950.0), ("HDFCLIFE", "HDFC LIFE INS CO", 119553, 760.0),
    ("TATACONSUM", "TATA CONSUMER PRODUCT", 878593, 1150.0), ("TATASTEEL", "TATA STEEL", 895745, 172.0),
    ("ACC", "ACC", 5633, 1850.0), ("SHRIRAMFIN", "SHRIRAM FINANCE", 1102337, 720.0),
]


def equity_tick(price: float) -> float:
    return 0.01 if price < 250 else 0.05


def monthly_expiry(year: int, month: int, weekday: int, cal: MarketCalendar) -> date:
    """The last ``weekday`` of the month, moved earlier past a holiday."""
    last = date(year, month, calendar.monthrange(year, month)[1])
    return cal.expiry_day(last - timedelta(days=(last.weekday() - weekday) % 7))


def weekly_expiries(start: date, weekday: int, count: int, cal: MarketCalendar) -> list[date]:
    d = start + timedelta(days=(weekday - start.weekday()) % 7)
    out = []
    while len(out) < count:
        e = cal.expiry_day(d)
        if e >= start:
            out.append(e)
        d += timedelta(days=7)
    return out


def option_symbol(name: str, expiry: date, strike: float, kind: str, monthly: bool) -> str:
    s = f"{int(strike)}" if float(strike).is_integer() else f"{strike:g}"
    yy = f"{expiry.year % 100:02d}"
    if monthly:
        return f"{name}{yy}{MONTHS[expiry.month - 1]}{s}{kind}"
    return f"{name}{yy}{WEEKLY_MONTH[expiry.month - 1]}{expiry.day:02d}{s}{kind}"


def future_symbol(name: str, expiry: date) -> str:
    return f"{name}{expiry.year % 100:02d}{MONTHS[expiry.month - 1]}FUT"


LISTED_SD = 3.0  # a chain spans this many standard deviations of the underlying's move to its expiry, each side


def listed_each_side(u: Underlying, spot: float, days: int, least: int) -> int:
    """Strikes listed each side of the money for an expiry ``days`` away: at least ``least``, and enough to
    span ``LISTED_SD`` standard deviations of the move to expiry, as the exchange lists far more strikes on a
    monthly than on this week's contract. (A fixed 15 a side left BANKNIFTY's monthly, its only expiry, no
    strike for a 0.2-delta iron condor's wings: the strategy never entered, live or in a backtest.)"""
    span = LISTED_SD * u.annual_vol * math.sqrt(max(days, 1) / 365) * spot
    return max(least, math.ceil(span / u.step))


class Universe:
    """All instruments for one sim date, indexed by token and by ``EXCHANGE:TRADINGSYMBOL``."""

    def __init__(self, today: date, cal: MarketCalendar = CALENDAR, strikes_each_side: int = 15) -> None:
        self.today = today
        self.calendar, self.strikes_each_side = cal, strikes_each_side
        self.by_token: dict[int, Instrument] = {}
        self.by_key: dict[str, Instrument] = {}
        self.underlyings = {u.name: u for u in INDICES}
        self.vol: dict[str, float] = {}
        self.base: dict[str, float] = {}
        for u in INDICES:
            self._add(Instrument(u.token, u.index_symbol, u.index_symbol, u.exchange, "INDICES", tick_size=0.0,
                                 lot_size=0, underlying=u.name, base_price=u.base_price))
            self.vol[u.name], self.base[u.name] = u.annual_vol, u.base_price
        for sym, token, price in OTHER_INDICES:
            self._add(Instrument(token, sym, sym, "NSE", "INDICES", tick_size=0.0, lot_size=0, underlying=sym,
                                 base_price=price))
            self.vol[sym], self.base[sym] = 0.5, price
        for i, (sym, name, token, price) in enumerate(EQUITIES):
            self._add(Instrument(token, sym, name, "NSE", "NSE", tick_size=equity_tick(price), underlying=sym,
                                 base_price=price))
            self.vol[sym], self.base[sym] = 0.18 + 0.01 * (i % 15), price
        self._next = {"NFO": 35000, "BFO": 800000}
        for u in INDICES:
            self._derivatives(u, cal, strikes_each_side)

    def _add(self, inst: Instrument) -> None:
        self.by_token[inst.instrument_token] = inst
        self.by_key[inst.key] = inst

    def _token(self, exchange: str) -> int:
        self._next[exchange] += 1
        return self._next[exchange] * 256 + SEG[exchange]

    def extend(self, day: date, spots: dict[str, float]) -> int:
        """Move to a later trading day: list the contracts that come into the window (new weeklies and
        monthlies, strikes around ``spots``). Existing instruments keep their tokens; expired ones stay
        in the indexes (positions settle against them) but leave the CSV dumps. Returns how many were added."""
        before = len(self.by_token)
        self.today = day
        for u in INDICES:
            self._derivatives(u, self.calendar, self.strikes_each_side, spots.get(u.name))
        return len(self.by_token) - before

    def _derivatives(self, u: Underlying, cal: MarketCalendar, n: int, centre: float | None = None) -> None:
        t = self.today
        months = [(t.year + (t.month - 1 + k) // 12, (t.month - 1 + k) % 12 + 1) for k in range(3)]
        monthlies = [e for e in (monthly_expiry(y, m, u.expiry_weekday, cal) for y, m in months) if e >= t][:2]
        x = u.deriv_exchange

        def add(symbol: str, *rest) -> None:
            if f"{x}:{symbol}" not in self.by_key:  # already listed: keeps its token
                self._add(Instrument(self._token(x), symbol, u.name, x, *rest))

        for e in monthlies:
            add(future_symbol(u.name, e), f"{x}-FUT", "FUT", 0.10, u.lot_size, e, 0.0, u.name, u.freeze_quantity)
        expiries = {monthlies[0]: True}
        if u.weekly:
            for e in weekly_expiries(t, u.expiry_weekday, 3, cal):
                expiries.setdefault(e, e in monthlies)
        spot = centre or u.base_price
        atm = round(spot / u.step) * u.step
        for e, monthly in sorted(expiries.items()):
            for k in range(-(w := listed_each_side(u, spot, (e - t).days, n)), w + 1):
                strike = float(atm + k * u.step)
                for kind in ("CE", "PE"):
                    add(option_symbol(u.name, e, strike, kind, monthly), f"{x}-OPT", kind, 0.05, u.lot_size, e,
                        strike, u.name, u.freeze_quantity)

    def find(self, key: str) -> Instrument | None:
        """``EXCHANGE:TRADINGSYMBOL`` or a bare instrument token."""
        if key.isdigit():
            return self.by_token.get(int(key))
        return self.by_key.get(key)

    def csv(self, exchange: str | None = None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for i in self.by_token.values():
            if (exchange and i.exchange != exchange) or (i.expiry is not None and i.expiry < self.today):
                continue
            w.writerow([i.instrument_token, i.exchange_token, i.tradingsymbol, i.name, 0.0,
                        i.expiry.isoformat() if i.expiry else "", i.strike, i.tick_size, i.lot_size,
                        i.instrument_type, i.segment, i.exchange])
        return buf.getvalue()
