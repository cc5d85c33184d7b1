#!/usr/bin/env node
// peer_node: the tick feed written to Redis the way a competent Node.js user would do it, with
// ioredis or with Valkey GLIDE (--client), as a baseline for tickplane in the benchmark
// (DESIGN.md, "Benchmarks"); bench/peer_hiredis.c is the C one and does the same job.
//
// Listens on a TCP feed port for adapters (tp_sim), reassembles size-prefixed FlatBuffers frames
// (schemas/frame.fbs: a 4-byte little-endian length, then a Frame with identifier "TPF1") and
// sends one
//
//     HSET tp:px:SYM bid ask bid_sz ask_sz last last_sz seq exch_ts recv_ts
//
// per Tick through one client, over TLS when --tls-ca is given:
//   ioredis  (--client ioredis, the default) with enableAutoPipelining: commands issued in one
//            tick of the event loop go out as one pipeline;
//   glide    (--client glide) @valkey/valkey-glide, whose Rust core multiplexes every request on
//            one connection and pipelines what is outstanding; its in-flight limit is set to
//            --max-inflight so that it never refuses a request the peer's own bound allows.
// Prices and sizes are 8-decimal text made from the int64 with BigInt ("101.25000000"), seq is
// the frame's, exch_ts the tick's exchange time, recv_ts the wall clock (ns) when the chunk
// carrying the frame was read: the same fields and formatting as tickplane.
//
// Frames are read with the `flatbuffers` runtime's ByteBuffer and small hand-written accessors
// (vtable slots through __offset) for Frame and Tick, with bounds checks, since the JavaScript
// runtime has no verifier; FeedAck frames are built with flatbuffers.Builder (size-prefixed,
// identifier "TPF1").
//
// Acks: a stream's acked seq is the highest seq whose HSET and every earlier one's were answered
// OK. ioredis answers in order; GLIDE's promises are not promised to, so each stream keeps its
// unanswered seqs in send order and the acked seq moves only past a run of answered ones.
// Streams are per feed connection. Once per event-loop iteration (setImmediate, after the I/O
// callbacks) one FeedAck per stream whose acked seq moved goes back, one write per
// connection. A failed HSET stops its stream's acks for good: no ack covers a lost write.
//
// Backpressure: with --max-inflight N (default 65536) the feed sockets are paused while N HSETs
// are unanswered and resumed at N/2, so a saturated Redis pushes back on the adapter through TCP
// rather than growing ioredis' queues without bound. 0 turns the bound off.
//
// Bad input (a frame over 64 KiB, tickplane's default TP_MAX_FRAME_BYTES; one that does not
// decode; one that is not a Tick) closes its connection with a message on stderr. A lost Redis
// connection is the client's business: both reconnect (their defaults).
//
// SIGINT/SIGTERM print one JSON line and exit 0: {"ticks":N,"hsets_ok":N,"errors":N,"acks":N}
// (ticks decoded, HSETs answered OK, everything that went wrong: failed HSETs and feed
// connections closed for bad input or a socket error; FeedAck frames written).
//
// usage: node peer.js --listen HOST:PORT [--client ioredis|glide] [--redis HOST:PORT]
//        [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-servername NAME]] [--max-inflight N]
// Prints "listening on PORT" once Redis is ready and the port is bound (PORT 0: any free port).
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const { parseArgs } = require('node:util');
const flatbuffers = require('flatbuffers');

const PREFIX_BYTES = 4;
const MAX_FRAME = 64 * 1024; // body bytes after the prefix
const IDENT = 'TPF1';
const BODY_TICK = 1; // union Body { Tick, OrderEvent, FeedAck }
const BODY_FEED_ACK = 3;
const SCALE = 100000000n; // 8 decimals
const DEFAULT_MAX_INFLIGHT = 65536;
const ERROR_LOG_MAX = 10;

// vtable slots (byte offsets in the vtable: 4 + 2 * field index), as flatc would generate them.
const FRAME_STREAM_ID = 4;
const FRAME_SEQ = 6;
const FRAME_BODY_TYPE = 8;
const FRAME_BODY = 10;
const TICK_SYMBOL = 4;
const TICK_BID = 6;
const TICK_ASK = 8;
const TICK_BID_SIZE = 10;
const TICK_ASK_SIZE = 12;
const TICK_LAST = 14;
const TICK_LAST_SIZE = 16;
const TICK_EXCHANGE_TS_NS = 18;
// Frame fields by index for the builder (field index, not vtable offset)
const FRAME_FIELD_STREAM_ID = 0;
const FRAME_FIELD_BODY_TYPE = 2;
const FRAME_FIELD_BODY = 3;
const FEED_ACK_FIELD_ACKED_SEQ = 0;

// 1-32 printable ASCII characters, no space, '{' or '}' (tickplane's rule for symbols).
const SYMBOL_RE = /^[\x21-\x7a\x7c\x7e]{1,32}$/;

// ---- options ------------------------------------------------------------------------------

const USAGE = `usage: node peer.js --listen HOST:PORT [options]
A benchmark peer: tick frames from tp_sim become one HSET tp:px:SYM each, through ioredis
with auto-pipelining or Valkey GLIDE; FeedAck frames go back once Redis has answered.

  --listen HOST:PORT      feed address to listen on (required; PORT 0 = any free port)
  --client NAME           ioredis or glide                                      ioredis
  --redis HOST:PORT       Redis                                          127.0.0.1:6379
  --tls-ca FILE           connect with TLS, trusting this CA
  --tls-cert FILE         client certificate (mTLS), with --tls-key
  --tls-key FILE          its private key
  --tls-servername NAME   name to send (SNI) and verify; default: the --redis host when it
                          is a name; an IP address is verified against the IP SANs
  --max-inflight N        pause the feed while N HSETs are unanswered (0 = no bound)  65536
  --help                  this text

Prints "listening on PORT" when ready; SIGINT/SIGTERM print
{"ticks":N,"hsets_ok":N,"errors":N,"acks":N} and exit 0.
`;

function badUsage(msg) {
  process.stderr.write(`peer_node: ${msg}\n${USAGE}`);
  process.exit(2);
}

// HOST:PORT or [IPv6]:PORT.
function parseAddr(flag, arg, minPort) {
  const colon = arg.lastIndexOf(':');
  let host = colon > 0 ? arg.slice(0, colon) : '';
  const portText = arg.slice(colon + 1);
  const port = Number(portText);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '' || !/^\d+$/.test(portText) || port < minPort || port > 65535) {
    badUsage(`${flag} "${arg}": expected HOST:PORT with PORT ${minPort}-65535`);
  }
  return { host, port };
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        listen: { type: 'string' },
        client: { type: 'string', default: 'ioredis' },
        redis: { type: 'string', default: '127.0.0.1:6379' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-servername': { type: 'string' },
        'max-inflight': { type: 'string', default: String(DEFAULT_MAX_INFLIGHT) },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    badUsage(err.message);
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (parsed.listen === undefined) badUsage('--listen HOST:PORT is required');
  if (!(parsed.client in CLIENTS)) badUsage(`--client "${parsed.client}": ioredis or glide`);
  const maxInflight = Number(parsed['max-inflight']);
  if (!/^\d+$/.test(parsed['max-inflight']) || maxInflight > 100000000) {
    badUsage(`--max-inflight "${parsed['max-inflight']}": expected 0-100000000`);
  }
  const tlsFlags = ['tls-cert', 'tls-key', 'tls-servername'].filter((k) => parsed[k] !== undefined);
  if (parsed['tls-ca'] === undefined && tlsFlags.length > 0) {
    badUsage(`--${tlsFlags[0]} needs --tls-ca`);
  }
  if ((parsed['tls-cert'] === undefined) !== (parsed['tls-key'] === undefined)) {
    badUsage('--tls-cert and --tls-key go together');
  }
  return {
    client: parsed.client,
    listen: parseAddr('--listen', parsed.listen, 0),
    redis: parseAddr('--redis', parsed.redis, 1),
    tlsCa: parsed['tls-ca'],
    tlsCert: parsed['tls-cert'],
    tlsKey: parsed['tls-key'],
    tlsServername: parsed['tls-servername'],
    maxInflight,
  };
}

// ---- frames -------------------------------------------------------------------------------

class FrameError extends Error {}

// The table whose uoffset is at `ref`, checked (with its vtable) to lie inside [lo, hi).
function tableAt(bb, ref, lo, hi) {
  if (ref < lo || ref + 4 > hi) throw new FrameError('table offset out of bounds');
  const pos = ref + bb.readUint32(ref);
  if (pos + 4 > hi) throw new FrameError('table out of bounds');
  const vt = pos - bb.readInt32(pos);
  if (vt < lo || vt + 4 > hi || vt % 2 !== 0) throw new FrameError('vtable out of bounds');
  const vtSize = bb.readUint16(vt);
  const objSize = bb.readUint16(vt + 2);
  if (vtSize < 4 || vt + vtSize > hi || objSize < 4 || pos + objSize > hi) {
    throw new FrameError('table size out of bounds');
  }
  return pos;
}

// Offset of a present field inside the table at pos (0 when absent), checked against the table.
function fieldOffset(bb, pos, slot, size) {
  const o = bb.__offset(pos, slot);
  if (o !== 0 && o + size > bb.readUint16(pos - bb.readInt32(pos) + 2)) {
    throw new FrameError('field out of bounds');
  }
  return o;
}

function readI64(bb, pos, slot) {
  const o = fieldOffset(bb, pos, slot, 8);
  return o === 0 ? 0n : bb.readInt64(pos + o);
}

function readU64(bb, pos, slot) {
  const o = fieldOffset(bb, pos, slot, 8);
  return o === 0 ? 0n : bb.readUint64(pos + o);
}

function readU8(bb, pos, slot) {
  const o = fieldOffset(bb, pos, slot, 1);
  return o === 0 ? 0 : bb.readUint8(pos + o);
}

function readString(bb, pos, slot, hi) {
  const o = fieldOffset(bb, pos, slot, 4);
  if (o === 0) return null;
  const at = pos + o + bb.readUint32(pos + o);
  if (at + 4 > hi) throw new FrameError('string out of bounds');
  const len = bb.readUint32(at);
  if (at + 4 + len + 1 > hi || bb.readUint8(at + 4 + len) !== 0) {
    throw new FrameError('string out of bounds');
  }
  return bb.__string(pos + o);
}

// Decodes the frame at bytes [start, start + len) of bb (prefix included). Returns
// { streamId, seq, bodyType, tick } where tick is null unless bodyType is BODY_TICK.
function decodeFrame(bb, start, len) {
  const lo = start + PREFIX_BYTES; // the FlatBuffer proper
  const hi = start + len;
  if (len < PREFIX_BYTES + 8) throw new FrameError('frame too short');
  for (let i = 0; i < IDENT.length; i++) {
    if (bb.readUint8(lo + 4 + i) !== IDENT.charCodeAt(i)) {
      throw new FrameError(`file identifier is not "${IDENT}"`);
    }
  }
  const frame = tableAt(bb, lo, lo, hi);
  const streamId = readU64(bb, frame, FRAME_STREAM_ID);
  const seq = readU64(bb, frame, FRAME_SEQ);
  const bodyType = readU8(bb, frame, FRAME_BODY_TYPE);
  const bodyField = fieldOffset(bb, frame, FRAME_BODY, 4);
  if (bodyType === 0 || bodyField === 0) throw new FrameError('frame without a body');
  if (bodyType !== BODY_TICK) return { streamId, seq, bodyType, tick: null };

  const t = tableAt(bb, frame + bodyField, lo, hi);
  const symbol = readString(bb, t, TICK_SYMBOL, hi);
  if (symbol === null || !SYMBOL_RE.test(symbol)) throw new FrameError('bad or missing symbol');
  const tick = {
    symbol,
    bid: readI64(bb, t, TICK_BID),
    ask: readI64(bb, t, TICK_ASK),
    bidSize: readI64(bb, t, TICK_BID_SIZE),
    askSize: readI64(bb, t, TICK_ASK_SIZE),
    last: readI64(bb, t, TICK_LAST),
    lastSize: readI64(bb, t, TICK_LAST_SIZE),
    exchangeTsNs: readI64(bb, t, TICK_EXCHANGE_TS_NS),
  };
  if (tick.bidSize < 0n || tick.askSize < 0n || tick.lastSize < 0n) {
    throw new FrameError('negative size');
  }
  return { streamId, seq, bodyType, tick };
}

const ackBuilder = new flatbuffers.Builder(64);

// Frame{stream_id, seq = 0, body = FeedAck{acked_seq}}, size-prefixed, in a Buffer of its own.
function buildAck(streamId, ackedSeq) {
  const b = ackBuilder;
  b.clear();
  b.startObject(1);
  b.addFieldInt64(FEED_ACK_FIELD_ACKED_SEQ, ackedSeq, 0n);
  const ack = b.endObject();
  b.startObject(4);
  b.addFieldInt64(FRAME_FIELD_STREAM_ID, streamId, 0n);
  b.addFieldOffset(FRAME_FIELD_BODY, ack, 0);
  b.addFieldInt8(FRAME_FIELD_BODY_TYPE, BODY_FEED_ACK, 0);
  const frame = b.endObject();
  b.finishSizePrefixed(frame, IDENT);
  return Buffer.from(b.asUint8Array()); // a copy: the builder is reused
}

// v / 10^8 as text with every decimal written: -50000000n -> "-0.50000000".
function fixed8(v) {
  const neg = v < 0n;
  const m = neg ? -v : v;
  return `${neg ? '-' : ''}${m / SCALE}.${(m % SCALE).toString().padStart(8, '0')}`;
}

// Wall-clock nanoseconds: the monotonic clock anchored to the wall clock once, at start.
const wallOrigin =
  BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();
function wallNs() {
  return wallOrigin + process.hrtime.bigint();
}

// ---- the peer -----------------------------------------------------------------------------

class FeedConn {
  constructor(peer, socket) {
    this.peer = peer;
    this.socket = socket;
    this.name = `adapter ${socket.remoteAddress}:${socket.remotePort}`;
    this.pending = null; // bytes of an incomplete frame
    // stream id (bigint) -> { id, answered, ackSent, failed, sent: seqs in send order from
    // head, done: seqs answered out of order }
    this.streams = new Map();
    this.closed = false;
  }

  stream(id) {
    let s = this.streams.get(id);
    if (s === undefined) {
      s = { id, conn: this, answered: 0n, ackSent: 0n, failed: false, sent: [], head: 0,
            done: new Set() };
      this.streams.set(id, s);
    }
    return s;
  }

  onData(chunk) {
    const recvTs = wallNs().toString();
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    const bb = new flatbuffers.ByteBuffer(buf);
    let off = 0;
    while (buf.length - off >= PREFIX_BYTES) {
      const bodyLen = buf.readUInt32LE(off);
      if (bodyLen > MAX_FRAME) {
        this.close(`frame of ${bodyLen} bytes (the limit is ${MAX_FRAME})`);
        return;
      }
      const len = PREFIX_BYTES + bodyLen;
      if (buf.length - off < len) break;
      let f;
      try {
        f = decodeFrame(bb, off, len);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        this.close(`bad frame: ${err.message}`);
        return;
      }
      if (f.bodyType !== BODY_TICK) {
        this.close(`frame stream ${f.streamId} seq ${f.seq} is not a Tick (body type ${f.bodyType})`);
        return;
      }
      this.peer.writeTick(this.stream(f.streamId), f.seq, f.tick, recvTs);
      off += len;
    }
    if (off < buf.length) this.pending = buf.subarray(off);
  }

  // Closes the connection; with a reason, it is an error and logged.
  close(reason) {
    if (this.closed) return;
    this.closed = true;
    if (reason !== undefined) {
      process.stderr.write(`peer_node: ${this.name}: closing the connection: ${reason}\n`);
      this.peer.errors++;
    }
    this.peer.conns.delete(this);
    this.socket.destroy();
  }
}

// Marks seq answered; true when the stream's acked seq moved.
function answer(s, seq) {
  if (s.sent[s.head] !== seq) {
    s.done.add(seq);
    return false;
  }
  s.head++;
  while (s.head < s.sent.length && s.done.delete(s.sent[s.head])) s.head++;
  s.answered = s.sent[s.head - 1];
  if (s.head > 4096 && s.head * 2 > s.sent.length) {
    s.sent = s.sent.slice(s.head);
    s.head = 0;
  }
  return true;
}

class Peer {
  constructor(opts, redis) {
    this.opts = opts;
    this.redis = redis;
    this.conns = new Set();
    this.dirty = new Set(); // streams whose acked seq moved in this iteration
    this.ackScheduled = false;
    this.inflight = 0;
    this.paused = false;
    this.ticks = 0;
    this.hsetsOk = 0;
    this.errors = 0;
    this.acks = 0;
    this.sendAcks = this.sendAcks.bind(this);
  }

  accept(socket) {
    socket.setNoDelay(true);
    const c = new FeedConn(this, socket);
    this.conns.add(c);
    if (this.paused) socket.pause();
    socket.on('data', (chunk) => c.onData(chunk));
    socket.on('end', () => {
      const left = c.pending === null ? 0 : c.pending.length;
      c.close(left > 0 ? `end of stream inside a frame (${left} bytes)` : undefined);
    });
    socket.on('error', (err) => c.close(`socket: ${err.message}`));
    socket.on('close', () => c.close());
  }

  writeTick(stream, seq, t, recvTs) {
    this.ticks++;
    this.inflight++;
    stream.sent.push(seq);
    this.redis.hset(
      `tp:px:${t.symbol}`,
      [
        'bid', fixed8(t.bid),
        'ask', fixed8(t.ask),
        'bid_sz', fixed8(t.bidSize),
        'ask_sz', fixed8(t.askSize),
        'last', fixed8(t.last),
        'last_sz', fixed8(t.lastSize),
        'seq', seq.toString(),
        'exch_ts', t.exchangeTsNs.toString(),
        'recv_ts', recvTs,
      ],
      (err) => this.onReply(stream, seq, err),
    );
    if (this.opts.maxInflight > 0 && this.inflight >= this.opts.maxInflight && !this.paused) {
      this.paused = true;
      for (const c of this.conns) c.socket.pause();
    }
  }

  onReply(stream, seq, err) {
    this.inflight--;
    if (err) {
      if (this.errors < ERROR_LOG_MAX) {
        process.stderr.write(`peer_node: HSET (stream ${stream.id} seq ${seq}): ${err.message}\n`);
      }
      this.errors++;
      stream.failed = true;
    } else {
      this.hsetsOk++;
      if (!stream.failed && answer(stream, seq)) {
        this.dirty.add(stream);
        if (!this.ackScheduled) {
          this.ackScheduled = true;
          setImmediate(this.sendAcks);
        }
      }
    }
    if (this.paused && this.inflight <= this.opts.maxInflight / 2) {
      this.paused = false;
      for (const c of this.conns) c.socket.resume();
    }
  }

  // Once per event-loop iteration: one FeedAck per stream that moved, one write per connection.
  sendAcks() {
    this.ackScheduled = false;
    const out = new Map(); // conn -> [frames]
    for (const s of this.dirty) {
      if (s.conn.closed || s.failed || s.answered <= s.ackSent) continue;
      let frames = out.get(s.conn);
      if (frames === undefined) out.set(s.conn, (frames = []));
      frames.push(buildAck(s.id, s.answered));
      s.ackSent = s.answered;
      this.acks++;
    }
    this.dirty.clear();
    for (const [c, frames] of out) {
      c.socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    }
  }

  summary() {
    return JSON.stringify({
      ticks: this.ticks,
      hsets_ok: this.hsetsOk,
      errors: this.errors,
      acks: this.acks,
    });
  }
}

// ---- main ---------------------------------------------------------------------------------

// The TLS material both clients take: PEM buffers and the name to verify.
function tlsMaterial(opts) {
  const tls = { ca: fs.readFileSync(opts.tlsCa) };
  if (opts.tlsCert !== undefined) {
    tls.cert = fs.readFileSync(opts.tlsCert);
    tls.key = fs.readFileSync(opts.tlsKey);
  }
  // SNI takes host names only. An IP address is left out, and Node then checks the
  // certificate's IP SANs against it; --tls-servername names the host to verify instead.
  const servername =
    opts.tlsServername ?? (net.isIP(opts.redis.host) === 0 ? opts.redis.host : undefined);
  if (servername !== undefined) tls.servername = servername;
  return tls;
}

// Each client as the peer uses it: connect() resolves once Redis answers, and
// hset(key, [field, value, ...], cb) calls cb(err) with its reply.
const CLIENTS = {
  async ioredis(opts) {
    const Redis = require('ioredis');
    const o = {
      host: opts.redis.host,
      port: opts.redis.port,
      enableAutoPipelining: true,
      lazyConnect: true,
    };
    if (opts.tlsCa !== undefined) o.tls = tlsMaterial(opts);
    const redis = new Redis(o);
    redis.on('error', (err) => process.stderr.write(`peer_node: redis: ${err.message}\n`));
    await redis.connect();
    return { hset: (key, fv, cb) => redis.hset(key, ...fv, cb) };
  },

  async glide(opts) {
    const { GlideClient } = require('@valkey/valkey-glide');
    if (opts.tlsCert !== undefined) throw new Error('--client glide: no client certificates');
    const config = {
      // GLIDE verifies the certificate against the address's host: the name, when given.
      addresses: [{ host: opts.tlsServername ?? opts.redis.host, port: opts.redis.port }],
      requestTimeout: 30000,
      inflightRequestsLimit: opts.maxInflight > 0 ? opts.maxInflight : 1 << 30,
    };
    if (opts.tlsCa !== undefined) {
      config.useTLS = true;
      config.advancedConfiguration = {
        tlsAdvancedConfiguration: { rootCertificates: fs.readFileSync(opts.tlsCa) },
      };
    }
    const client = await GlideClient.createClient(config);
    return {
      hset(key, fv, cb) {
        const fields = {};
        for (let i = 0; i < fv.length; i += 2) fields[fv[i]] = fv[i + 1];
        client.hset(key, fields).then(() => cb(null), cb);
      },
    };
  },
};

async function main() {
  const opts = parseOptions();
  const where = `${opts.redis.host}:${opts.redis.port}${opts.tlsCa !== undefined ? ' (TLS)' : ''}`;
  let redis;
  try {
    redis = await CLIENTS[opts.client](opts);
  } catch (err) {
    process.stderr.write(`peer_node: ${opts.client}: cannot connect to Redis at ${where}: ` +
                         `${err.message}\n`);
    process.exit(1);
  }

  const peer = new Peer(opts, redis);
  const stop = () => {
    process.stdout.write(`${peer.summary()}\n`);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const server = net.createServer((socket) => peer.accept(socket));
  server.on('error', (err) => {
    process.stderr.write(
      `peer_node: listen on ${opts.listen.host}:${opts.listen.port}: ${err.message}\n`,
    );
    process.exit(1);
  });
  server.listen({ host: opts.listen.host, port: opts.listen.port, backlog: 128 }, () => {
    process.stdout.write(`listening on ${server.address().port}\n`);
  });
}

main();
