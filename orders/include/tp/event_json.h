/* TradingEvent as JSON, for TP_EVENT_FORMAT=json (human consumers, dashboards).
 *
 * One object per event, the fields of schemas/event.fbs with the same names.
 * Enumerations are lower-case names ("fill", "buy", "partially_filled"); prices
 * and quantities are decimal strings with 8 decimals so that no JSON reader
 * rounds them; ids and timestamps are integers. Absent parts are left out. */
#ifndef TP_EVENT_JSON_H
#define TP_EVENT_JSON_H

#include "tp/buf.h"
#include "tp/wire.h"

/* Appends the event to out. Returns 0 or TP_ENOMEM. */
int tp_event_json(const tp_trading_event_t *ev, tp_buf_t *out);

/* The JSON name of an event kind ("fill"), "unknown" for none: the kind field of the event
 * stream's entries. */
const char *tp_event_kind_name(tp_event_kind_t kind);

#endif
