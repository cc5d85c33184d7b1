"""Reference models for the end-to-end tests (tests/e2e/test_service.c).

Written from the service contract, not from tickplane's code:

* OrderModel   the FIX order state machine over execution reports, the order
               hashes tp:{ACCT}:ord:OID, the open sets tp:{ACCT}:open, and (through
               Book) the portfolio hashes tp:{ACCT}:pf, exactly as the contract
               specifies them (integer fixed point, round half away from zero).
* Book         average-cost positions with the contract's rounding rules, exact
               to the last unit (1e-8, cost 1e-16), marked to market by TP_MARK_PRICE
               (mark_price()) at every fill and whenever a tick moves the symbol.
* ExactBook    the same positions with fractions.Fraction and no rounding at all:
               the independent oracle that the portfolio test compares to the cent.
* FlowGen      a seeded random, valid order flow (news, partial fills, fills,
               cancels, replaces, expiries ...) with deliberately invalid events
               and duplicates mixed in; each event is applied to an OrderModel as
               it is generated, and the intended outcome is checked against it.

Units: prices and quantities are int fixed point with 8 decimals (SCALE), cost
and notional 16 decimals, timestamps int nanoseconds.
"""
import random
from fractions import Fraction

SCALE = 10**8
EPOCH_NS = 1_700_000_000_000_000_000

# ExecType (frame.fbs / common.fbs)
ET_NEW, ET_PARTIAL, ET_FILL, ET_DFD, ET_CANCELED, ET_REPLACED = 0, 1, 2, 3, 4, 5
ET_PENDING_CANCEL, ET_STOPPED, ET_REJECTED, ET_SUSPENDED, ET_PENDING_NEW = 6, 7, 8, 9, 10
ET_EXPIRED, ET_PENDING_REPLACE, ET_TRADE = 12, 14, 15
# OrdStatus
ST_NEW, ST_PARTIAL, ST_FILLED, ST_DFD, ST_CANCELED, ST_REPLACED = 0, 1, 2, 3, 4, 5
ST_PENDING_CANCEL, ST_STOPPED, ST_REJECTED, ST_SUSPENDED, ST_PENDING_NEW = 6, 7, 8, 9, 10
ST_EXPIRED, ST_PENDING_REPLACE = 12, 14
# Side / OrdType
BUY, SELL, SELL_SHORT = 1, 2, 5
MARKET, LIMIT = 1, 2

FIX_CODES = "0123456789ABCDEFGHIJ"
OPEN_STATUSES = {ST_PENDING_NEW, ST_NEW, ST_PARTIAL, ST_REPLACED, ST_PENDING_CANCEL,
                 ST_PENDING_REPLACE, ST_STOPPED, ST_SUSPENDED}
FILL_TYPES = {ET_PARTIAL, ET_FILL, ET_TRADE}
CLOSING = {ET_CANCELED: ST_CANCELED, ET_EXPIRED: ST_EXPIRED, ET_DFD: ST_DFD}

KIND_UPDATE, KIND_FILL, KIND_REJECT, KIND_GAP = "order_update", "fill", "reject", "feed_gap"
KIND_ALERT = "activity_alert"
KIND_CODES = {1: KIND_UPDATE, 2: KIND_FILL, 3: KIND_REJECT, 4: KIND_GAP, 5: KIND_ALERT}


def div_round(num, den):
    """num / den rounded to an integer, half away from zero (ints, den != 0)."""
    q, r = divmod(abs(num), abs(den))
    if 2 * r >= abs(den):
        q += 1
    return q if (num >= 0) == (den > 0) else -q


def fmt(v, decimals=8):
    """Plain decimal text with every fractional digit: fmt(-5, 8) == '-0.00000005'."""
    a = abs(v)
    p = 10**decimals
    return f"{'-' if v < 0 else ''}{a // p}.{a % p:0{decimals}d}"


def order_key(prefix, account, order_id):
    return f"{prefix}{{{account}}}:ord:{order_id}"


def open_key(prefix, account):
    return f"{prefix}{{{account}}}:open"


def pf_key(prefix, account):
    return f"{prefix}{{{account}}}:pf"


# ---- portfolio ------------------------------------------------------------------------------

# TP_MARK_PRICE
MARK_LAST, MARK_MID, MARK_BID_ASK = "last", "mid", "bid_ask"
MARK_RULES = (MARK_LAST, MARK_MID, MARK_BID_ASK)


def mark_price(rule, qty, quote, fallback):
    """The price a position of qty is marked at under rule, from quote (last, bid, ask; 0 = not
    quoted). last: the last trade, else the mid; mid: the mid, else the last trade; bid_ask:
    longs (and flat) at the bid, shorts at the ask, else the last trade. The mid is (bid + ask)
    / 2 rounded half away from zero, when both sides are > 0. Where nothing applies: fallback
    (a fill's price, or the old mark on a tick)."""
    last, bid, ask = quote
    mid = div_round(bid + ask, 2) if bid > 0 and ask > 0 else 0
    if rule == MARK_LAST:
        first, second = last, mid
    elif rule == MARK_MID:
        first, second = mid, last
    elif rule == MARK_BID_ASK:
        first, second = ask if qty < 0 else bid, last
    else:
        raise ValueError(f"mark rule {rule!r}")
    return first if first > 0 else second if second > 0 else fallback


class Position:
    __slots__ = ("qty", "cost", "rpnl", "upnl", "mark")

    def __init__(self):
        self.qty = self.cost = self.rpnl = self.upnl = self.mark = 0

    def copy(self):
        p = Position()
        p.qty, p.cost, p.rpnl, p.upnl, p.mark = self.qty, self.cost, self.rpnl, self.upnl, self.mark
        return p

    @property
    def avg(self):
        return div_round(self.cost, self.qty) if self.qty else 0


class Book:
    """Average-cost positions per (account, symbol), the contract's integer rules, marked
    to market under rule (TP_MARK_PRICE).

    quotes holds each symbol's latest tick (last, bid, ask): a tick replaces the whole quote.
    A fill marks its position at the quote (mark_price(), falling back to the fill's price,
    also when the symbol has no quote); a tick re-marks every open position of its symbol
    (falling back to the old mark); flat positions keep the mark of their closing fill.

    The service re-marks at the end of the loop iteration that read a tick, at the quote then
    in the table, so ticks of one symbol read in one iteration count as the last of them only.
    Applying them here one by one gives the same marks when that last one is two-sided (a
    price under every rule, whatever the old mark) or alone: a test that sends several ticks
    of a symbol that tickplane may read together keeps to that."""

    def __init__(self, rule=MARK_LAST):
        self.rule = rule
        self.pos = {}
        self.quotes = {}  # symbol -> (last, bid, ask) of its latest tick

    def copy(self):
        b = Book(self.rule)
        b.pos = {k: p.copy() for k, p in self.pos.items()}
        b.quotes = dict(self.quotes)
        return b

    @staticmethod
    def _mark(p, mark):
        p.mark = mark
        p.upnl = div_round(p.qty * p.mark - p.cost, SCALE)

    def _remark(self, symbol):
        """Re-marks the open positions of symbol at its quote; returns how many changed."""
        q, n = self.quotes[symbol], 0
        for (_, sym), p in self.pos.items():
            if sym == symbol and p.qty != 0:
                mark = mark_price(self.rule, p.qty, q, p.mark)
                n += mark != p.mark
                self._mark(p, mark)
        return n

    def tick(self, symbol, bid, ask, last):
        """A tick: the symbol's new quote; returns the positions whose mark changed."""
        self.quotes[symbol] = (last, bid, ask)
        return self._remark(symbol)

    def remark_all(self, rule=None):
        """A warm restart (under rule, when given): every open position of a quoted symbol is
        re-marked at its quote, as the service does before its feeds start. Returns how many
        marks changed (tickplane_positions_remarked_total)."""
        self.rule = rule or self.rule
        return sum(self._remark(s) for s in sorted(self.quotes))

    def mark_of(self, symbol, qty, px):
        """The mark a fill at px leaving qty gets now."""
        q = self.quotes.get(symbol)
        return mark_price(self.rule, qty, q, px) if q else px

    def fill(self, account, symbol, side, q, px):
        p = self.pos.setdefault((account, symbol), Position())
        s = q if side == BUY else -q
        if p.qty == 0 or (p.qty > 0) == (s > 0):
            p.cost += s * px
            p.qty += s
        else:
            c = min(abs(s), abs(p.qty))
            removed = div_round(p.cost * c, abs(p.qty))
            diff = c * px - removed if p.qty > 0 else abs(removed) - c * px
            p.rpnl += div_round(diff, SCALE)
            p.cost -= removed
            p.qty += c if s > 0 else -c
            rest = abs(s) - c
            if rest:
                assert p.qty == 0 and p.cost == 0, "flip from a position that is not flat"
                p.qty = rest if s > 0 else -rest
                p.cost = p.qty * px
        self._mark(p, self.mark_of(symbol, p.qty, px))
        return p

    def hash_of(self, account):
        """The expected tp:{ACCT}:pf hash of an account (text values)."""
        h, rp, up = {}, 0, 0
        for (acct, sym), p in sorted(self.pos.items()):
            if acct != account:
                continue
            h[f"{sym}:qty"] = fmt(p.qty)
            h[f"{sym}:avg"] = fmt(p.avg)
            h[f"{sym}:rpnl"] = fmt(p.rpnl)
            h[f"{sym}:upnl"] = fmt(p.upnl)
            h[f"{sym}:cost"] = fmt(p.cost, 16)
            h[f"{sym}:mark"] = fmt(p.mark)
            rp += p.rpnl
            up += p.upnl
        if h:
            h["rpnl"] = fmt(rp)
            h["upnl"] = fmt(up)
        return h

    def accounts(self):
        return sorted({a for a, _ in self.pos})


class ExactBook:
    """The same positions in exact rational arithmetic, no rounding anywhere."""

    def __init__(self):
        self.pos = {}  # (account, symbol) -> [qty, cost, rpnl, upnl] as Fractions

    def fill(self, account, symbol, side, q, px):
        p = self.pos.setdefault((account, symbol), [Fraction(0)] * 4)
        qty, cost, rpnl, _ = p
        price = Fraction(px, SCALE)
        s = Fraction(q if side == BUY else -q, SCALE)
        if qty == 0 or (qty > 0) == (s > 0):
            cost += s * price
            qty += s
        else:
            c = min(abs(s), abs(qty))
            removed = cost * c / abs(qty)
            rpnl += c * price - removed if qty > 0 else -removed - c * price
            cost -= removed
            qty += c if s > 0 else -c
            rest = abs(s) - c
            if rest:
                qty = rest if s > 0 else -rest
                cost = qty * price
        p[:] = [qty, cost, rpnl, qty * price - cost]

    def expected(self, account):
        """{field: Fraction} for the fields the test compares."""
        h, rp, up = {}, Fraction(0), Fraction(0)
        for (acct, sym), (qty, cost, rpnl, upnl) in self.pos.items():
            if acct != account:
                continue
            h[f"{sym}:qty"] = qty
            h[f"{sym}:avg"] = cost / qty if qty else Fraction(0)
            h[f"{sym}:rpnl"] = rpnl
            h[f"{sym}:upnl"] = upnl
            rp += rpnl
            up += upnl
        h["rpnl"] = rp
        h["upnl"] = up
        return h


# ---- orders ---------------------------------------------------------------------------------


class Order:
    __slots__ = ("order_id", "cl_ord_id", "account", "symbol", "side", "ord_type", "price",
                 "qty", "status", "filled", "notional", "last_qty", "last_px", "exec_id",
                 "updated_ts", "execs")

    def copy(self):
        o = Order()
        for k in Order.__slots__:
            setattr(o, k, getattr(self, k))
        o.execs = set(self.execs)
        return o

    @property
    def is_open(self):
        return self.status in OPEN_STATUSES

    @property
    def avg_px(self):
        return div_round(self.notional, self.filled) if self.filled else 0

    @property
    def leaves(self):
        return self.qty - self.filled if self.is_open else 0

    def fields(self):
        """The expected tp:{ACCT}:ord:OID hash (text values)."""
        return {
            "order_id": self.order_id,
            "cl_ord_id": self.cl_ord_id,
            "account": self.account,
            "symbol": self.symbol,
            "side": FIX_CODES[self.side],
            "ord_type": FIX_CODES[self.ord_type],
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "status": FIX_CODES[self.status],
            "filled_qty": fmt(self.filled),
            "avg_px": fmt(self.avg_px),
            "leaves_qty": fmt(self.leaves),
            "last_qty": fmt(self.last_qty),
            "last_px": fmt(self.last_px),
            "notional": fmt(self.notional, 16),
            "exec_id": self.exec_id,
            "updated_ts": str(self.updated_ts),
        }


def new_event(**kw):
    ev = dict(order_id=None, cl_ord_id=None, account=None, symbol=None, side=BUY, ord_type=LIMIT,
              price=0, qty=0, exec_type=ET_NEW, ord_status=ST_NEW, last_qty=0, last_px=0,
              exec_id=None, ts=0, text=None)
    ev.update(kw)
    return ev


class Outcome:
    __slots__ = ("result", "kind", "reason", "order", "position")

    def __init__(self, result, kind=None, reason=None, order=None, position=None):
        self.result = result      # "accepted", "duplicate" or "reject"
        self.kind = kind          # the event kind published, None for a duplicate
        self.reason = reason      # for a reject: the model's reason (for messages)
        self.order = order        # copy of the order after the event (None: unknown)
        self.position = position  # copy of the position after a fill


class OrderModel:
    def __init__(self, rule=MARK_LAST):
        self.orders = {}  # order_id -> Order (ids are unique across accounts)
        self.book = Book(rule)

    def copy(self):
        m = OrderModel(self.book.rule)
        m.orders = {k: o.copy() for k, o in self.orders.items()}
        m.book = self.book.copy()
        return m

    def _reject(self, why, o):
        return Outcome("reject", KIND_REJECT, why, o.copy() if o else None)

    def apply(self, ev):
        o = self.orders.get(ev["order_id"])
        et = ev["exec_type"]
        if o is not None and ev["exec_id"] in o.execs:
            return Outcome("duplicate", order=o.copy())
        if o is None:
            if et == ET_NEW:
                if ev["qty"] <= 0:
                    return self._reject("new order quantity <= 0", None)
                if ev["side"] not in (BUY, SELL, SELL_SHORT):
                    return self._reject("new order side", None)
                if ev["ord_type"] == LIMIT and ev["price"] <= 0:
                    return self._reject("limit order without a price", None)
                o = self._create(ev, ST_NEW)
                return Outcome("accepted", KIND_UPDATE, order=o.copy())
            if et == ET_REJECTED:
                o = self._create(ev, ST_REJECTED)
                return Outcome("accepted", KIND_UPDATE, order=o.copy())
            return self._reject("unknown order", None)
        if (ev["account"], ev["symbol"], ev["side"]) != (o.account, o.symbol, o.side):
            return self._reject("account/symbol/side differs from the order's", o)
        if not o.is_open:
            return self._reject("order is terminal", o)
        if et == ET_NEW:
            return self._reject("new for an existing order", o)
        if et in FILL_TYPES:
            q, px = ev["last_qty"], ev["last_px"]
            if q <= 0 or px <= 0:
                return self._reject("fill without quantity or price", o)
            if o.filled + q > o.qty:
                return self._reject("overfill", o)
            o.filled += q
            o.notional += q * px
            o.last_qty, o.last_px = q, px
            o.status = ST_FILLED if o.filled == o.qty else ST_PARTIAL
            self._accept(o, ev)
            p = self.book.fill(o.account, o.symbol, o.side, q, px)
            return Outcome("accepted", KIND_FILL, order=o.copy(), position=p.copy())
        if et in CLOSING:
            o.status = CLOSING[et]
            self._accept(o, ev)
            return Outcome("accepted", KIND_UPDATE, order=o.copy())
        if et == ET_REPLACED:
            if ev["qty"] < o.filled or ev["qty"] <= 0:
                return self._reject("replace below the filled quantity", o)
            if o.ord_type == LIMIT and ev["price"] <= 0:
                return self._reject("replace without a limit price", o)
            o.price, o.qty = ev["price"], ev["qty"]
            o.status = ST_FILLED if o.qty == o.filled else ST_REPLACED
            self._accept(o, ev)
            return Outcome("accepted", KIND_UPDATE, order=o.copy())
        raise AssertionError(f"the generator does not use exec type {et}")

    def _create(self, ev, status):
        o = Order()
        o.order_id, o.cl_ord_id = ev["order_id"], ev["cl_ord_id"] or ""
        o.account, o.symbol, o.side = ev["account"], ev["symbol"], ev["side"]
        o.ord_type, o.price, o.qty = ev["ord_type"], ev["price"], ev["qty"]
        o.status, o.filled, o.notional, o.last_qty, o.last_px = status, 0, 0, 0, 0
        o.execs = set()
        self.orders[o.order_id] = o
        self._accept(o, ev)
        return o

    @staticmethod
    def _accept(o, ev):
        o.execs.add(ev["exec_id"])
        o.exec_id = ev["exec_id"]
        o.updated_ts = ev["ts"]

    # -- the Redis state this model implies --

    def order_hashes(self, prefix):
        return {order_key(prefix, o.account, o.order_id): o.fields() for o in self.orders.values()}

    def open_sets(self, prefix, accounts):
        sets = {open_key(prefix, a): set() for a in accounts}
        for o in self.orders.values():
            if o.is_open:
                sets.setdefault(open_key(prefix, o.account), set()).add(o.order_id)
        return sets

    def pf_hashes(self, prefix, accounts):
        return {pf_key(prefix, a): self.book.hash_of(a) for a in accounts}


# ---- a random order flow --------------------------------------------------------------------


class FlowGen:
    """Builds a list of execution reports (dicts for new_event) with the outcome
    each must have. Order ids are unique across accounts; exec ids are unique
    except where a duplicate is meant. Every event carries the order's current
    terms (price, qty) and its cl_ord_id, as a gateway would."""

    INVALID_KINDS = ("unknown_fill", "overfill", "fill_after_cancel", "wrong_account",
                     "wrong_symbol", "wrong_side", "new_existing", "replace_below_filled",
                     "event_on_terminal")

    def __init__(self, seed, accounts, symbols, max_live=30, invalid_rate=0.05, dup_rate=0.03,
                 tag="O"):
        self.rng = random.Random(seed)
        self.accounts, self.symbols = accounts, symbols
        self.max_live, self.invalid_rate, self.dup_rate = max_live, invalid_rate, dup_rate
        self.tag = tag
        self.model = OrderModel()
        self.events, self.intent = [], []  # parallel lists
        self.outcomes = []
        self.next_order = self.next_exec = 0
        self.applied = {}  # order_id -> list of accepted events (for duplicates)
        self.terminal, self.canceled = [], []
        self.invalid_counts = {k: 0 for k in self.INVALID_KINDS}
        self.ts = EPOCH_NS

    # -- ids and events --

    def _oid(self):
        self.next_order += 1
        return f"{self.tag}-{self.next_order}"

    def _xid(self):
        self.next_exec += 1
        return f"X{self.tag}-{self.next_exec}"

    def _ev(self, o, exec_type, **kw):
        """An event about order o (an Order) with its current terms."""
        self.ts += self.rng.randint(1, 5000)
        ev = new_event(order_id=o.order_id, cl_ord_id=o.cl_ord_id or None, account=o.account,
                       symbol=o.symbol, side=o.side, ord_type=o.ord_type, price=o.price,
                       qty=o.qty, exec_type=exec_type, ord_status=o.status,
                       exec_id=self._xid(), ts=self.ts)
        ev.update(kw)
        return ev

    def _push(self, ev, intent, want):
        out = self.model.apply(ev)
        assert out.result == want, f"generator: {intent} gave {out.result} ({out.reason}), want {want}"
        self.events.append(ev)
        self.intent.append(intent)
        self.outcomes.append(out)
        if out.result == "accepted":
            self.applied.setdefault(ev["order_id"], []).append(ev)
            o = self.model.orders[ev["order_id"]]
            ev["ord_status"] = o.status  # what the gateway reports (informative)
            if not o.is_open:
                self.terminal.append(o.order_id)
                if o.status == ST_CANCELED:
                    self.canceled.append(o.order_id)
        return out

    def live(self):
        return [o for o in self.model.orders.values() if o.is_open]

    # -- valid steps --

    def new_order(self):
        rng = self.rng
        side = rng.choice((BUY, BUY, SELL, SELL, SELL_SHORT))
        ord_type = LIMIT if rng.random() < 0.85 else MARKET
        price = rng.randint(10 * SCALE, 500 * SCALE) // 10000 * 10000 if ord_type == LIMIT else 0
        qty = rng.randint(1, 2000) * SCALE // rng.choice((1, 1, 4, 100))
        self.ts += rng.randint(1, 5000)
        ev = new_event(order_id=self._oid(),
                       cl_ord_id=f"C{self.next_order}" if rng.random() < 0.9 else None,
                       account=rng.choice(self.accounts), symbol=rng.choice(self.symbols),
                       side=side, ord_type=ord_type, price=price, qty=qty, exec_type=ET_NEW,
                       ord_status=ST_NEW, exec_id=self._xid(), ts=self.ts)
        return self._push(ev, "new", "accepted")

    def rejected_order(self):
        rng = self.rng
        self.ts += rng.randint(1, 5000)
        ev = new_event(order_id=self._oid(), cl_ord_id=f"C{self.next_order}",
                       account=rng.choice(self.accounts), symbol=rng.choice(self.symbols),
                       side=rng.choice((BUY, SELL)), ord_type=LIMIT,
                       price=rng.randint(10, 500) * SCALE, qty=rng.randint(1, 100) * SCALE,
                       exec_type=ET_REJECTED, ord_status=ST_REJECTED, exec_id=self._xid(),
                       ts=self.ts, text="gateway reject")
        return self._push(ev, "rejected_new", "accepted")

    def fill_px(self, o):
        base = o.price if o.price else self.rng.randint(10 * SCALE, 500 * SCALE)
        return max(1, base + self.rng.randint(-SCALE, SCALE) * (1 if self.rng.random() < 0.5 else 0))

    def fill(self, o, full=False):
        rng = self.rng
        leaves = o.qty - o.filled
        q = leaves if full or leaves <= 1 or rng.random() < 0.3 else rng.randint(1, leaves - 1)
        if q == leaves:
            et = rng.choice((ET_FILL, ET_TRADE))
        else:
            et = rng.choice((ET_PARTIAL, ET_TRADE))
        ev = self._ev(o, et, last_qty=q, last_px=self.fill_px(o))
        return self._push(ev, "fill", "accepted")

    def cancel(self, o, et=ET_CANCELED):
        return self._push(self._ev(o, et), {ET_CANCELED: "cancel", ET_EXPIRED: "expire",
                                            ET_DFD: "done_for_day"}[et], "accepted")

    def replace(self, o, to_filled=False):
        rng = self.rng
        if to_filled and o.filled > 0:
            qty = o.filled
        else:
            qty = max(o.filled + 1, o.qty + rng.randint(-o.qty // 2, o.qty // 2))
        price = (o.price + rng.randint(-100, 100) * 10**6) if o.ord_type == LIMIT else 0
        if o.ord_type == LIMIT and price <= 0:
            price = o.price
        return self._push(self._ev(o, ET_REPLACED, price=price, qty=qty), "replace", "accepted")

    def duplicate(self):
        """Resends an accepted report of a live order (same exec id): no change."""
        cands = [o for o in self.live() if self.applied.get(o.order_id)]
        if not cands:
            return None
        o = self.rng.choice(cands)
        ev = dict(self.rng.choice(self.applied[o.order_id]))
        return self._push(ev, "duplicate", "duplicate")

    def duplicate_terminal(self):
        """Resends the last accepted report of a terminal order: still a duplicate."""
        if not self.terminal:
            return None
        oid = self.rng.choice(self.terminal)
        return self._push(dict(self.applied[oid][-1]), "duplicate_terminal", "duplicate")

    # -- invalid steps (each must be refused, changing nothing) --

    def invalid(self, kind):
        rng, live = self.rng, self.live()
        if kind == "unknown_fill":
            fake = Order()
            fake.order_id, fake.cl_ord_id = self._oid(), None
            fake.account, fake.symbol = rng.choice(self.accounts), rng.choice(self.symbols)
            fake.side, fake.ord_type, fake.price, fake.qty = BUY, LIMIT, 100 * SCALE, 10 * SCALE
            fake.status = ST_NEW
            ev = self._ev(fake, ET_TRADE, last_qty=SCALE, last_px=100 * SCALE)
        elif kind == "overfill":
            if not live:
                return None
            o = rng.choice(live)
            ev = self._ev(o, ET_TRADE, last_qty=o.qty - o.filled + rng.randint(1, SCALE),
                          last_px=self.fill_px(o))
        elif kind == "fill_after_cancel":
            if not self.canceled:
                return None
            o = self.model.orders[rng.choice(self.canceled)]
            ev = self._ev(o, ET_TRADE, last_qty=1, last_px=self.fill_px(o))
        elif kind in ("wrong_account", "wrong_symbol", "wrong_side"):
            if not live:
                return None
            o = rng.choice(live)
            if kind == "wrong_account":
                ev = self._ev(o, rng.choice((ET_TRADE, ET_CANCELED)),
                              account=rng.choice([a for a in self.accounts if a != o.account]),
                              last_qty=1, last_px=self.fill_px(o))
            elif kind == "wrong_symbol":
                ev = self._ev(o, ET_TRADE, symbol=rng.choice([s for s in self.symbols
                                                              if s != o.symbol]),
                              last_qty=1, last_px=self.fill_px(o))
            else:
                other = {BUY: SELL, SELL: BUY, SELL_SHORT: BUY}[o.side]
                ev = self._ev(o, ET_TRADE, side=other, last_qty=1, last_px=self.fill_px(o))
        elif kind == "new_existing":
            if not live:
                return None
            ev = self._ev(rng.choice(live), ET_NEW)
        elif kind == "replace_below_filled":
            cands = [o for o in live if o.filled > 0]
            if not cands:
                return None
            o = rng.choice(cands)
            ev = self._ev(o, ET_REPLACED, qty=o.filled - 1)
        elif kind == "event_on_terminal":
            if not self.terminal:
                return None
            o = self.model.orders[rng.choice(self.terminal)]
            if o.status == ST_REJECTED:
                return None
            ev = self._ev(o, rng.choice((ET_CANCELED, ET_REPLACED, ET_TRADE)),
                          last_qty=1, last_px=self.fill_px(o))
        else:
            raise AssertionError(kind)
        out = self._push(ev, "invalid:" + kind, "reject")
        self.invalid_counts[kind] += 1
        return out

    def reuse_terminal(self, o, exec_type):
        """A report for terminal order o (a NEW or REJECTED that reuses its id,
        with a fresh exec id): refused, the order stays as it is."""
        out = self._push(self._ev(o, exec_type), f"invalid:terminal_{exec_type}", "reject")
        return out

    # -- the flow --

    def step(self, allow_odd=True):
        rng, live = self.rng, self.live()
        r = rng.random()
        if allow_odd and r < self.invalid_rate:
            kinds = list(self.INVALID_KINDS)
            rng.shuffle(kinds)
            # the least used kinds first, so every kind shows up
            kinds.sort(key=lambda k: self.invalid_counts[k])
            for k in kinds:
                if self.invalid(k):
                    return
        if allow_odd and r < self.invalid_rate + self.dup_rate and self.duplicate():
            return
        if not live or (len(live) < self.max_live and rng.random() < 0.3):
            if rng.random() < 0.03:
                self.rejected_order()
            else:
                self.new_order()
            return
        o = rng.choice(live)
        r = rng.random()
        if r < 0.55:
            self.fill(o)
        elif r < 0.70:
            self.fill(o, full=True)
        elif r < 0.80:
            self.cancel(o)
        elif r < 0.83:
            self.cancel(o, rng.choice((ET_EXPIRED, ET_DFD)))
        elif r < 0.98:
            self.replace(o)
        else:
            self.replace(o, to_filled=True)

    def generate(self, n, clean=()):
        """n events; indices in clean (a range) get only valid, non-duplicate events."""
        while len(self.events) < n:
            self.step(allow_odd=len(self.events) not in clean)
        # steps emit exactly one event each, so len == n
        return self.events

    def model_upto(self, k):
        """A fresh model with the first k events applied."""
        m = OrderModel()
        for ev in self.events[:k]:
            m.apply(ev)
        return m
