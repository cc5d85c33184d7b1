// The C API over the FlatBuffers-generated C++ code (tp/wire.h). This is the
// project's only C++ translation unit: it verifies, decodes into plain C
// structs and builds, and lets no C++ type or exception cross into C.
#include "tp/wire.h"

#include "tp/error.h"

#include "event_generated.h"
#include "frame_generated.h"

#include <cstring>
#include <new>

namespace fb = flatbuffers;
namespace w = tp::wire;

namespace {

// Limits for the verifier. This schema has no vectors or recursion, so no valid
// buffer comes near them; they bound the work a future schema could let a hostile
// buffer cause. A Frame is 2 tables (envelope, body) with strings below; a
// TradingEvent at most 5 (event, order, position, gap, alert).
const fb::uoffset_t kMaxDepth = 8;
const fb::uoffset_t kFrameMaxTables = 8;
const fb::uoffset_t kEventMaxTables = 16;

// The longest string the builders take: far beyond any identifier, well inside
// FlatBuffers' 2 GiB limit (past which its builder asserts).
const uint32_t kMaxStringBytes = 1u << 20;

fb::Verifier::Options verifier_options(fb::uoffset_t max_tables) {
    fb::Verifier::Options opts;
    opts.max_depth = kMaxDepth;
    opts.max_tables = max_tables;
    opts.check_alignment = true;
    opts.check_nested_flatbuffers = false;
    return opts;
}

tp_str_t view(const fb::String *s) {
    tp_str_t v = {nullptr, 0};
    if (s) {
        v.ptr = s->c_str();
        v.len = s->size();
    }
    return v;
}

bool valid_id(const fb::String *s, uint32_t max) {
    return s && tp_wire_id_valid(s->c_str(), s->size(), max);
}

bool optional_id(const fb::String *s) {
    return !s || valid_id(s, TP_WIRE_ID_MAX);
}

bool known_side(w::Side s) {
    return s == w::Side_Unknown || s == w::Side_Buy || s == w::Side_Sell || s == w::Side_SellShort;
}

// The first failed check, as a message for the log, or nullptr.
const char *check_tick(const w::Tick *t) {
    if (!valid_id(t->symbol(), TP_WIRE_SYMBOL_MAX))
        return "tick symbol: expected 1-32 printable characters without spaces or braces";
    if (t->bid_size() < 0 || t->ask_size() < 0 || t->last_size() < 0)
        return "tick size: expected bid_size, ask_size and last_size >= 0";
    return nullptr;
}

const char *check_order(const w::OrderEvent *o) {
    if (!valid_id(o->order_id(), TP_WIRE_ID_MAX) || !optional_id(o->cl_ord_id()) ||
        !optional_id(o->orig_cl_ord_id()) || !valid_id(o->exec_id(), TP_WIRE_ID_MAX))
        return "order ids: expected 1-64 printable characters without spaces or braces";
    if (!valid_id(o->account(), TP_WIRE_ID_MAX))
        return "order account: expected 1-64 printable characters without spaces or braces";
    if (!valid_id(o->symbol(), TP_WIRE_SYMBOL_MAX))
        return "order symbol: expected 1-32 printable characters without spaces or braces";
    if (!known_side(o->side()) || o->ord_type() > w::OrdType_MAX ||
        o->exec_type() > w::ExecType_MAX || o->ord_status() > w::OrdStatus_MAX)
        return "order enum: unknown side, ord_type, exec_type or ord_status";
    if (o->quantity() < 0 || o->last_qty() < 0)
        return "order quantity: expected quantity and last_qty >= 0";
    return nullptr;
}

// The enums of an event become C enums, which must hold known values.
bool known_event_enums(const w::TradingEvent *e) {
    const w::OrderSnapshot *o = e->order();
    if (e->kind() == w::EventKind_Unknown || e->kind() > w::EventKind_MAX)
        return false;
    return !o || (known_side(o->side()) && o->ord_type() <= w::OrdType_MAX &&
                  o->status() <= w::OrdStatus_MAX);
}

void decode_tick(const w::Tick *t, tp_tick_t *out) {
    out->symbol = view(t->symbol());
    out->bid = t->bid();
    out->ask = t->ask();
    out->bid_size = t->bid_size();
    out->ask_size = t->ask_size();
    out->last = t->last();
    out->last_size = t->last_size();
    out->exchange_ts_ns = t->exchange_ts_ns();
    out->sent_ns = t->sent_ns();
}

void decode_order(const w::OrderEvent *o, tp_order_event_t *out) {
    out->order_id = view(o->order_id());
    out->cl_ord_id = view(o->cl_ord_id());
    out->orig_cl_ord_id = view(o->orig_cl_ord_id());
    out->account = view(o->account());
    out->symbol = view(o->symbol());
    out->exec_id = view(o->exec_id());
    out->text = view(o->text());
    out->side = static_cast<tp_side_t>(o->side());
    out->ord_type = static_cast<tp_ord_type_t>(o->ord_type());
    out->exec_type = static_cast<tp_exec_type_t>(o->exec_type());
    out->ord_status = static_cast<tp_ord_status_t>(o->ord_status());
    out->price = o->price();
    out->quantity = o->quantity();
    out->last_qty = o->last_qty();
    out->last_px = o->last_px();
    out->transact_ts_ns = o->transact_ts_ns();
}

int fail(const char **why, int code, const char *msg) {
    if (why)
        *why = msg;
    return code;
}

bool aligned(const void *buf) {
    return reinterpret_cast<uintptr_t>(buf) % TP_WIRE_ALIGN == 0;
}

int decode_body(const w::Frame *f, tp_frame_t *out, const char **why) {
    const char *bad = nullptr;
    // The verifier accepts a known body_type whose body table is absent, and
    // body_as_*() then returns nullptr.
    if (f->body() == nullptr)
        return fail(why, TP_EFRAME_TYPE, "frame has no body");
    switch (f->body_type()) {
    case w::Body_Tick:
        if ((bad = check_tick(f->body_as_Tick())) != nullptr)
            return fail(why, TP_EFRAME_FIELD, bad);
        out->type = TP_BODY_TICK;
        decode_tick(f->body_as_Tick(), &out->body.tick);
        return 0;
    case w::Body_OrderEvent:
        if ((bad = check_order(f->body_as_OrderEvent())) != nullptr)
            return fail(why, TP_EFRAME_FIELD, bad);
        out->type = TP_BODY_ORDER;
        decode_order(f->body_as_OrderEvent(), &out->body.order);
        return 0;
    case w::Body_FeedAck:
        out->type = TP_BODY_ACK;
        out->body.acked_seq = f->body_as_FeedAck()->acked_seq();
        return 0;
    case w::Body_NONE:
        return fail(why, TP_EFRAME_TYPE, "frame has no body");
    default:
        // The generated verifier accepts union types it does not know (they may
        // come from a newer schema), so this is where they are caught.
        return fail(why, TP_EFRAME_TYPE, "frame body of a type this build does not know");
    }
}

// ---- events -----------------------------------------------------------------------------

void decode_order_snapshot(const w::OrderSnapshot *o, tp_order_snapshot_t *out) {
    out->order_id = view(o->order_id());
    out->cl_ord_id = view(o->cl_ord_id());
    out->account = view(o->account());
    out->symbol = view(o->symbol());
    out->exec_id = view(o->exec_id());
    out->side = static_cast<tp_side_t>(o->side());
    out->ord_type = static_cast<tp_ord_type_t>(o->ord_type());
    out->status = static_cast<tp_ord_status_t>(o->status());
    out->price = o->price();
    out->quantity = o->quantity();
    out->filled_qty = o->filled_qty();
    out->avg_px = o->avg_px();
    out->leaves_qty = o->leaves_qty();
    out->last_qty = o->last_qty();
    out->last_px = o->last_px();
    out->updated_ts_ns = o->updated_ts_ns();
}

void decode_position(const w::PositionSnapshot *p, tp_position_snapshot_t *out) {
    out->account = view(p->account());
    out->symbol = view(p->symbol());
    out->quantity = p->quantity();
    out->avg_cost = p->avg_cost();
    out->realized_pnl = p->realized_pnl();
    out->unrealized_pnl = p->unrealized_pnl();
}

// ---- building ---------------------------------------------------------------------------

// A C enum field as the int it holds. C lets a caller store any int in it;
// reading it as the enum type in C++ would be undefined for values outside the
// enumerators, so its bytes are read as an int.
template <typename E> int raw(const E &e) {
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
    int v;
    std::memcpy(&v, &e, sizeof(v));
    return v;
}

// Enums go on the wire as one byte: a value that does not fit would arrive as
// another one (257 as 1, Buy), so it is refused instead.
bool byte_enum(int v) {
    return v >= 0 && v <= 255;
}

bool str_ok(tp_str_t s) {
    return s.len <= kMaxStringBytes;
}

bool order_input_ok(const tp_order_event_t *o) {
    return o->order_id.ptr && o->account.ptr && o->symbol.ptr && o->exec_id.ptr &&
           str_ok(o->order_id) && str_ok(o->cl_ord_id) && str_ok(o->orig_cl_ord_id) &&
           str_ok(o->account) && str_ok(o->symbol) && str_ok(o->exec_id) && str_ok(o->text) &&
           byte_enum(raw(o->side)) && byte_enum(raw(o->ord_type)) && byte_enum(raw(o->exec_type)) &&
           byte_enum(raw(o->ord_status));
}

bool event_input_ok(const tp_trading_event_t *e) {
    const tp_order_snapshot_t *o = &e->order;
    const tp_position_snapshot_t *p = &e->position;
    bool order_ok =
        !e->has_order || (str_ok(o->order_id) && str_ok(o->cl_ord_id) && str_ok(o->account) &&
                          str_ok(o->symbol) && str_ok(o->exec_id) && byte_enum(raw(o->side)) &&
                          byte_enum(raw(o->ord_type)) && byte_enum(raw(o->status)));
    bool position_ok = !e->has_position || (str_ok(p->account) && str_ok(p->symbol));
    bool alert_ok = !e->has_alert || str_ok(e->alert.account);
    return byte_enum(raw(e->kind)) && str_ok(e->reason) && order_ok && position_ok && alert_ok;
}

fb::Offset<fb::String> string_or_null(fb::FlatBufferBuilder &fbb, tp_str_t s) {
    return s.ptr ? fbb.CreateString(s.ptr, s.len) : 0;
}

fb::Offset<w::OrderEvent> build_order_body(fb::FlatBufferBuilder &fbb, const tp_order_event_t *o) {
    auto order_id = string_or_null(fbb, o->order_id);
    auto cl_ord_id = string_or_null(fbb, o->cl_ord_id);
    auto orig_cl_ord_id = string_or_null(fbb, o->orig_cl_ord_id);
    auto account = string_or_null(fbb, o->account);
    auto symbol = string_or_null(fbb, o->symbol);
    auto exec_id = string_or_null(fbb, o->exec_id);
    auto text = string_or_null(fbb, o->text);
    return w::CreateOrderEvent(fbb, order_id, cl_ord_id, orig_cl_ord_id, account, symbol,
                               static_cast<w::Side>(raw(o->side)),
                               static_cast<w::OrdType>(raw(o->ord_type)), o->price, o->quantity,
                               static_cast<w::ExecType>(raw(o->exec_type)),
                               static_cast<w::OrdStatus>(raw(o->ord_status)), o->last_qty,
                               o->last_px, exec_id, o->transact_ts_ns, text);
}

fb::Offset<w::OrderSnapshot> build_order_snapshot(fb::FlatBufferBuilder &fbb,
                                                  const tp_order_snapshot_t *o) {
    auto order_id = string_or_null(fbb, o->order_id);
    auto cl_ord_id = string_or_null(fbb, o->cl_ord_id);
    auto account = string_or_null(fbb, o->account);
    auto symbol = string_or_null(fbb, o->symbol);
    auto exec_id = string_or_null(fbb, o->exec_id);
    return w::CreateOrderSnapshot(
        fbb, order_id, cl_ord_id, account, symbol, static_cast<w::Side>(raw(o->side)),
        static_cast<w::OrdType>(raw(o->ord_type)), o->price, o->quantity,
        static_cast<w::OrdStatus>(raw(o->status)), o->filled_qty, o->avg_px, o->leaves_qty,
        o->last_qty, o->last_px, exec_id, o->updated_ts_ns);
}

fb::Offset<w::PositionSnapshot> build_position(fb::FlatBufferBuilder &fbb,
                                               const tp_position_snapshot_t *p) {
    auto account = string_or_null(fbb, p->account);
    auto symbol = string_or_null(fbb, p->symbol);
    return w::CreatePositionSnapshot(fbb, account, symbol, p->quantity, p->avg_cost,
                                     p->realized_pnl, p->unrealized_pnl);
}

} // namespace

struct tp_wire_builder {
    fb::FlatBufferBuilder fbb{1024};
};

namespace {

int finish_frame(tp_wire_builder_t *b, uint64_t stream_id, uint64_t seq, w::Body type,
                 fb::Offset<void> body, const uint8_t **out, size_t *len) {
    auto frame = w::CreateFrame(b->fbb, stream_id, seq, type, body);
    // Pad every frame to a multiple of 8: one without an 8-byte field set (zero
    // stream, seq and longs) would otherwise be padded to 4 only, and shift the
    // frames after it in a stream off the 8-byte alignment they were built for.
    b->fbb.TrackMinAlign(8);
    w::FinishSizePrefixedFrameBuffer(b->fbb, frame);
    *out = b->fbb.GetBufferPointer();
    *len = b->fbb.GetSize();
    return 0;
}

// Runs one build, turning the builder's only exception (allocation failure)
// into an error code, since no exception may unwind into C.
template <typename Build> int guarded(tp_wire_builder_t *b, Build build) {
    try {
        b->fbb.Clear();
        return build();
    } catch (const std::bad_alloc &) {
        // Reset, not Clear: a failed growth has already recorded the new size,
        // and Clear would leave the builder writing past its real buffer.
        b->fbb.Reset();
        return TP_ENOMEM;
    }
}

} // namespace

extern "C" {

// Identifiers become parts of Redis keys, and the account a hash tag
// ("tp:{ACCT}:..."): no spaces, control bytes or braces, bounded length.
bool tp_wire_id_valid(const char *s, size_t len, size_t max) {
    if (!s || len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c <= ' ' || c >= 0x7f || c == '{' || c == '}')
            return false;
    }
    return true;
}

int tp_wire_decode(const void *frame, size_t len, tp_frame_t *out, const char **why) {
    if (!aligned(frame))
        return fail(why, TP_EINVAL, "frame buffer is not 8-byte aligned");
    if (len >= FLATBUFFERS_MAX_BUFFER_SIZE) /* the Verifier asserts on it */
        return fail(why, TP_EFRAME_VERIFY, "frame larger than a FlatBuffer can be");
    fb::Verifier verifier(static_cast<const uint8_t *>(frame), len,
                          verifier_options(kFrameMaxTables));
    if (!w::VerifySizePrefixedFrameBuffer(verifier))
        return fail(why, TP_EFRAME_VERIFY,
                    "not a valid Frame (FlatBuffers verification, length prefix or identifier)");
    const w::Frame *f = w::GetSizePrefixedFrame(frame);
    out->stream_id = f->stream_id();
    out->seq = f->seq();
    return decode_body(f, out, why);
}

int tp_wire_decode_event(const void *buf, size_t len, tp_trading_event_t *out, const char **why) {
    if (!aligned(buf))
        return fail(why, TP_EINVAL, "event buffer is not 8-byte aligned");
    if (len >= FLATBUFFERS_MAX_BUFFER_SIZE)
        return fail(why, TP_EFRAME_VERIFY, "event larger than a FlatBuffer can be");
    fb::Verifier verifier(static_cast<const uint8_t *>(buf), len,
                          verifier_options(kEventMaxTables));
    if (!w::VerifyTradingEventBuffer(verifier))
        return fail(why, TP_EFRAME_VERIFY,
                    "not a valid TradingEvent (FlatBuffers verification or identifier failed)");
    const w::TradingEvent *e = w::GetTradingEvent(buf);
    if (!known_event_enums(e))
        return fail(why, TP_EFRAME_FIELD, "event enum: unknown kind, side, ord_type or status");
    *out = tp_trading_event_t();
    out->event_id = e->event_id();
    out->kind = static_cast<tp_event_kind_t>(e->kind());
    out->ts_ns = e->ts_ns();
    out->stream_id = e->stream_id();
    out->seq = e->seq();
    out->reason = view(e->reason());
    if ((out->has_order = e->order() != nullptr))
        decode_order_snapshot(e->order(), &out->order);
    if ((out->has_position = e->position() != nullptr))
        decode_position(e->position(), &out->position);
    if ((out->has_gap = e->gap() != nullptr)) {
        out->gap.stream_id = e->gap()->stream_id();
        out->gap.expected_seq = e->gap()->expected_seq();
        out->gap.received_seq = e->gap()->received_seq();
    }
    if ((out->has_alert = e->alert() != nullptr)) {
        out->alert.account = view(e->alert()->account());
        out->alert.rate_per_s = e->alert()->rate_per_s();
        out->alert.burst = e->alert()->burst();
    }
    return 0;
}

tp_wire_builder_t *tp_wire_builder_new(void) {
    return new (std::nothrow) tp_wire_builder();
}

void tp_wire_builder_free(tp_wire_builder_t *b) {
    delete b;
}

int tp_wire_build_tick(tp_wire_builder_t *b, uint64_t stream_id, uint64_t seq, const tp_tick_t *t,
                       const uint8_t **out, size_t *len) {
    // A required field left out trips an assertion in the FlatBuffers builder.
    if (!t->symbol.ptr || !str_ok(t->symbol))
        return TP_EINVAL;
    return guarded(b, [&] {
        auto symbol = string_or_null(b->fbb, t->symbol);
        auto tick = w::CreateTick(b->fbb, symbol, t->bid, t->ask, t->bid_size, t->ask_size, t->last,
                                  t->last_size, t->exchange_ts_ns, t->sent_ns);
        return finish_frame(b, stream_id, seq, w::Body_Tick, tick.Union(), out, len);
    });
}

int tp_wire_build_order(tp_wire_builder_t *b, uint64_t stream_id, uint64_t seq,
                        const tp_order_event_t *ev, const uint8_t **out, size_t *len) {
    if (!order_input_ok(ev))
        return TP_EINVAL;
    return guarded(b, [&] {
        auto order = build_order_body(b->fbb, ev);
        return finish_frame(b, stream_id, seq, w::Body_OrderEvent, order.Union(), out, len);
    });
}

int tp_wire_build_ack(tp_wire_builder_t *b, uint64_t stream_id, uint64_t acked_seq,
                      const uint8_t **out, size_t *len) {
    return guarded(b, [&] {
        auto ack = w::CreateFeedAck(b->fbb, acked_seq);
        return finish_frame(b, stream_id, 0, w::Body_FeedAck, ack.Union(), out, len);
    });
}

int tp_wire_build_event(tp_wire_builder_t *b, const tp_trading_event_t *ev, const uint8_t **out,
                        size_t *len) {
    if (!event_input_ok(ev))
        return TP_EINVAL;
    return guarded(b, [&] {
        auto &fbb = b->fbb;
        auto order = ev->has_order ? build_order_snapshot(fbb, &ev->order) : 0;
        auto position = ev->has_position ? build_position(fbb, &ev->position) : 0;
        auto gap = ev->has_gap ? w::CreateFeedGapInfo(fbb, ev->gap.stream_id, ev->gap.expected_seq,
                                                      ev->gap.received_seq)
                               : 0;
        auto alert = ev->has_alert
                         ? w::CreateActivityAlertInfo(fbb, string_or_null(fbb, ev->alert.account),
                                                      ev->alert.rate_per_s, ev->alert.burst)
                         : 0;
        auto reason = string_or_null(fbb, ev->reason);
        auto event = w::CreateTradingEvent(
            fbb, ev->event_id, static_cast<w::EventKind>(raw(ev->kind)), ev->ts_ns, ev->stream_id,
            ev->seq, order, position, gap, reason, alert);
        fbb.TrackMinAlign(8); /* as frames: decodable in place from an aligned copy */
        w::FinishTradingEventBuffer(fbb, event);
        *out = fbb.GetBufferPointer();
        *len = fbb.GetSize();
        return 0;
    });
}

tp_str_t tp_str(const char *s) {
    tp_str_t v = {s, s ? static_cast<uint32_t>(strlen(s)) : 0};
    return v;
}

} // extern "C"
