#!/usr/bin/python3
"""bench/marks_report.py: the figures of a bench/marks.sh run (standard library only).

  marks_report.py init DIR KEY=VALUE... bin:LABEL=PATH...   writes DIR/config.json
  marks_report.py round DIR NAME LABEL BIN ROUND              DIR/NAME/* -> DIR/NAME.json
  marks_report.py summary DIR                                 DIR/*.json -> DIR/summary.md

A round's raw files (DIR/NAME/, written by marks.sh): preload.json and ticks.json (tp_sim's
summaries), ticks.hgrm, tickplane.log (with the allocation counts that SIGUSR2 and the exit
print), stat-{window_start,window_end}-{tickplane,redis}.txt (/proc/PID/stat) and
time-*.txt, alloc-{preloaded,window_start,window_end}.txt, cmdstats-{preloaded,window_end}.txt
(INFO commandstats), metrics-{preloaded,window_end}.prom (/metrics) and
vmhwm-{preloaded,window_end}-kb.txt (tickplane's peak RSS after the preload and at the end).

The measured window runs from one second after the ticks began (tp_sim's --warmup 1) to the
moment every tick was acked; its ticks are the ones tp_sim measured (due after the first
second). CPU and allocations per tick divide the window's figures by them. Redis and /metrics
counters are taken after the preload and at the end: their "ticks" figures cover every tick
(the first second included), their "total" figures the preload as well."""
import hashlib
import json
import os
import re
import statistics
import sys

MARK_METRICS = ["tickplane_marks_written_total", "tickplane_positions_remarked_total",
                "tickplane_marks_conflated_total"]
CONTEXT_METRICS = ["tickplane_price_writes_total", "tickplane_conflated_prices_total",
                   "tickplane_ticks_total", "tickplane_redis_commands_total"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def load_json(path):
    text = read(path)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def number(path):
    text = read(path, "").strip()
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return None


def cpu_seconds(path):
    """utime + stime of /proc/PID/stat (fields 14 and 15; the name in field 2 may hold
    spaces and parentheses, so the fields are counted after its last ')')."""
    text = read(path)
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def commandstats(path, cmd="hset"):
    m = re.search(rf"^cmdstat_{cmd}:calls=(\d+),usec=(\d+)", read(path, ""), re.M)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def prom(path):
    """Counter values by name (labelled samples summed); None for a missing file."""
    text = read(path)
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                values[m.group(1)] = values.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return values


def delta(a, b):
    return b - a if a is not None and b is not None else None


def per(a, b, scale=1.0):
    return a * scale / b if a is not None and b else None


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_init(d, args):
    cfg = {"binaries": []}
    for arg in args:
        key, _, value = arg.partition("=")
        if key.startswith("bin:"):
            cfg["binaries"].append({"label": key[4:], "path": value, "sha256": sha256(value),
                                    "mtime": os.path.getmtime(value)})
        else:
            cfg[key] = int(value) if value.isdigit() else value
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def cmd_round(d, name, label, binary, rnd):
    rd = os.path.join(d, name)
    ticks = load_json(os.path.join(rd, "ticks.json")) or {}
    preload = load_json(os.path.join(rd, "preload.json")) or {}
    lat = ticks.get("ack_latency_us", {})
    window_ticks = lat.get("count")
    acked_ticks = ticks.get("ticks", {}).get("acked_seq")
    t0, t1 = number(os.path.join(rd, "time-window_start.txt")), \
        number(os.path.join(rd, "time-window_end.txt"))
    window_s = delta(t0, t1)
    cpu = {}
    for proc in ("tickplane", "redis"):
        c = delta(cpu_seconds(os.path.join(rd, f"stat-window_start-{proc}.txt")),
                  cpu_seconds(os.path.join(rd, f"stat-window_end-{proc}.txt")))
        cpu[f"{proc}_s"] = c
        cpu[f"{proc}_us_per_tick"] = per(c, window_ticks, 1e6)
        cpu[f"{proc}_cores"] = per(c, window_s)
    allocs = {k: number(os.path.join(rd, f"alloc-{k}.txt"))
              for k in ("preloaded", "window_start", "window_end")}
    exits = re.findall(r'"msg":"allocations","count":(\d+)\}', read(os.path.join(rd,
                                                                                "tickplane.log"),
                                                                    ""))
    allocs["at_exit"] = int(exits[-1]) if exits else None
    allocs["window"] = delta(allocs["window_start"], allocs["window_end"])
    allocs["per_tick"] = per(allocs["window"], window_ticks)
    allocs["first_second"] = delta(allocs["preloaded"], allocs["window_start"])
    hset0 = commandstats(os.path.join(rd, "cmdstats-preloaded.txt"))
    hset1 = commandstats(os.path.join(rd, "cmdstats-window_end.txt"))
    hset = {"calls_total": hset1[0], "usec_total": hset1[1],
            "calls_preload": hset0[0], "calls_ticks": hset1[0] - hset0[0],
            "usec_ticks": hset1[1] - hset0[1]}
    hset["calls_per_tick"] = per(hset["calls_ticks"], acked_ticks)
    hset["usec_per_tick"] = per(hset["usec_ticks"], acked_ticks)
    m0 = prom(os.path.join(rd, "metrics-preloaded.prom")) or {}
    m1 = prom(os.path.join(rd, "metrics-window_end.prom")) or {}
    # A counter that first appears after the preload counted nothing before it.
    metrics = {k: {"ticks": delta(m0.get(k, 0.0 if k in m1 else None), m1.get(k)),
                   "total": m1.get(k)} for k in MARK_METRICS + CONTEXT_METRICS}
    rss = number(os.path.join(rd, "vmhwm-window_end-kb.txt"))
    rss_preloaded = number(os.path.join(rd, "vmhwm-preloaded-kb.txt"))
    result = {
        "name": name, "label": label, "binary": binary, "round": int(rnd),
        "latency_us": lat,
        "ticks": {"offered_rate": ticks.get("ticks", {}).get("offered_rate"),
                  "sent": ticks.get("ticks", {}).get("sent"), "acked": acked_ticks,
                  "acked_rate": per(acked_ticks, ticks.get("end_s")),
                  "all_acked": bool(ticks.get("all_acked")),
                  "tp_sim_status": number(os.path.join(rd, "tp_sim-status.txt"))},
        "window": {"seconds": window_s, "ticks": window_ticks},
        "cpu": cpu,
        "rss_peak_mb": rss / 1024 if rss is not None else None,
        "rss_peak_preloaded_mb": rss_preloaded / 1024 if rss_preloaded is not None else None,
        "rss_growth_ticks_mb": per(delta(rss_preloaded, rss), 1024),
        "allocations": allocs,
        "redis_hset": hset,
        "metrics": metrics,
        "preload": preload.get("positions"),
        "tp_sim": ticks,
    }
    with open(os.path.join(d, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"  {name:<20} p99 {fmt(lat.get('p99'))} us  p99.9 {fmt(lat.get('p99.9'))} us  "
          f"acked {fmt(result['ticks']['acked_rate'], 0)}/s  "
          f"CPU/tick tickplane {fmt(cpu['tickplane_us_per_tick'], 2)} us "
          f"redis {fmt(cpu['redis_us_per_tick'], 2)} us  "
          f"allocs/tick {fmt(allocs['per_tick'], 4)}  HSET {fmt(hset['calls_ticks'])}  "
          f"marks {fmt(metrics[MARK_METRICS[0]]['ticks'])}"
          f"{'' if result['ticks']['all_acked'] else '  NOT ALL ACKED'}")


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def get(r, path):
    for key in path.split("/"):
        if r is None:
            return None
        r = r.get(key)
    return r


# (label, path in the round JSON, digits)
FIGURES = [
    ("p50 latency (us)", "latency_us/p50", 1),
    ("p90 latency (us)", "latency_us/p90", 1),
    ("p99 latency (us)", "latency_us/p99", 1),
    ("p99.9 latency (us)", "latency_us/p99.9", 1),
    ("max latency (us)", "latency_us/max", 1),
    ("acked ticks/s", "ticks/acked_rate", 0),
    ("tickplane CPU per tick (us)", "cpu/tickplane_us_per_tick", 2),
    ("redis-server CPU per tick (us)", "cpu/redis_us_per_tick", 2),
    ("tickplane CPU (cores)", "cpu/tickplane_cores", 2),
    ("redis-server CPU (cores)", "cpu/redis_cores", 2),
    ("tickplane peak RSS (MB)", "rss_peak_mb", 1),
    ("tickplane peak RSS after the preload (MB)", "rss_peak_preloaded_mb", 1),
    ("tickplane peak RSS growth during the ticks (MB)", "rss_growth_ticks_mb", 1),
    ("allocations per tick", "allocations/per_tick", 4),
    ("allocations in the window", "allocations/window", 0),
    ("HSET calls in Redis, ticks", "redis_hset/calls_ticks", 0),
    ("HSET calls per tick", "redis_hset/calls_per_tick", 3),
    ("Redis HSET time per tick (us)", "redis_hset/usec_per_tick", 2),
    ("HSET calls in Redis, whole round", "redis_hset/calls_total", 0),
] + [(f"{m}, ticks", f"metrics/{m}/ticks", 0) for m in MARK_METRICS] + [
    ("tickplane_price_writes_total, ticks", "metrics/tickplane_price_writes_total/ticks", 0),
    ("tickplane_conflated_prices_total, ticks",
     "metrics/tickplane_conflated_prices_total/ticks", 0),
    ("preload: positions opened in (s)", "preload/end_s", 1),
]


def median_cell(values, digits):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, "-"
    med = statistics.median(vals)
    if len(vals) == 1:
        return med, fmt(med, digits)
    return med, f"{fmt(med, digits)} ({fmt(min(vals), digits)}-{fmt(max(vals), digits)})"


def ratio(a, b):
    if a is None or b is None:
        return "-"
    if b == 0:
        return "=" if a == 0 else "-"
    return f"{a / b:.3g}x"


def cmd_summary(d):
    cfg = load_json(os.path.join(d, "config.json"))
    labels = [b["label"] for b in cfg["binaries"]]
    ref = "before" if "before" in labels else labels[0]
    others = [lab for lab in labels if lab != ref]
    runs = {lab: [] for lab in labels}
    for rnd in range(1, cfg["rounds"] + 1):
        for lab in labels:
            r = load_json(os.path.join(d, f"r{rnd}-{lab}.json"))
            if r:
                runs[lab].append(r)
    date = read(os.path.join(d, "date.txt"), "?").strip()
    machine = read(os.path.join(d, "machine.txt"), "?").strip().replace("\n", "; ")
    pre = next((r["preload"] for lab in labels for r in runs[lab] if r.get("preload")), None)
    out = [f"Run {date} on: {machine}", ""]
    held = cfg["positions"] * 1.0 / cfg["symbols"]
    out.append(
        f"Load: {cfg['rate']:,} ticks/s offered for {cfg['seconds']} s per run (the first "
        f"second not measured) over {cfg['symbols']:,} symbols, against {cfg['positions']:,} "
        f"open positions over {cfg['accounts']:,} accounts ("
        f"{pre['per_account'] if pre else '?'} per account, every symbol held by about "
        f"{held:g} accounts; {fmt(pre['long']) if pre else '?'} long, "
        f"{fmt(pre['short']) if pre else '?'} short); Redis over "
        f"{'TLS' if cfg['tls'] == 'on' else 'plain TCP'}; {cfg['rounds']} "
        f"round{'s' if cfg['rounds'] != 1 else ''}, alternated "
        f"{', '.join(labels)}, ...")
    out.append("")
    for b in cfg["binaries"]:
        out.append(f"- `{b['label']}`: `{b['path']}` (sha256 {b['sha256'][:12]})")
    out.append("")
    head = "| figure | " + " | ".join(f"{lab} (median, min-max)" for lab in labels)
    head += "".join(f" | {o}/{ref}" for o in others) + " |"
    out.append(head)
    out.append("|---|" + "--:|" * (len(labels) + len(others)))
    for title, path, digits in FIGURES:
        meds, cells = {}, []
        for lab in labels:
            meds[lab], cell = median_cell([get(r, path) for r in runs[lab]], digits)
            cells.append(cell)
        row = f"| {title} | " + " | ".join(cells)
        row += "".join(f" | {ratio(meds[o], meds[ref])}" for o in others) + " |"
        out.append(row)
    acked = [f"{sum(r['ticks']['all_acked'] for r in runs[lab])}/{len(runs[lab])}"
             for lab in labels]
    out.append("| runs with every tick acked | " + " | ".join(acked) +
               " |" * (len(others)) + " |")
    out.append("")
    out.append(
        "Latency: from each tick's intended send time to the FeedAck that covers it (tp_sim, "
        "open loop). CPU: user+sys of the process from /proc/PID/stat between one second "
        "into the ticks and the last ack, divided by the ticks measured in that window. "
        "Allocations: malloc+calloc+realloc (LD_PRELOAD counter) in the same window. HSET "
        "calls: INFO commandstats, from the end of the preload to the last ack (all ticks, "
        "also the first second); \"whole round\" adds the preload. Metric counters: the same "
        "span, \"-\" where the binary does not export them. Ratios are of the medians.")
    out.append("")
    out.append("### Per round\n")
    out.append("| run | p50 | p90 | p99 | p99.9 | acked ticks/s | tickplane CPU/tick (us) "
               "| redis CPU/tick (us) | RSS (MB) | allocs/tick | HSET calls (ticks) "
               "| marks written | positions remarked | marks conflated | all acked |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|")
    for rnd in range(1, cfg["rounds"] + 1):
        for lab in labels:
            r = next((x for x in runs[lab] if x["round"] == rnd), None)
            if r is None:
                out.append(f"| r{rnd}-{lab} | missing |||||||||||||| ")
                continue
            cols = [(f"latency_us/{p}", 1) for p in ("p50", "p90", "p99", "p99.9")]
            cols += [("ticks/acked_rate", 0), ("cpu/tickplane_us_per_tick", 2),
                     ("cpu/redis_us_per_tick", 2), ("rss_peak_mb", 1),
                     ("allocations/per_tick", 4), ("redis_hset/calls_ticks", 0)]
            cols += [(f"metrics/{m}/ticks", 0) for m in MARK_METRICS]
            cells = [fmt(get(r, path), digits) for path, digits in cols]
            cells.append(fmt(get(r, "ticks/all_acked")))
            out.append(f"| r{rnd}-{lab} | " + " | ".join(cells) + " |")
    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "init":
        cmd_init(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 7 and sys.argv[1] == "round":
        cmd_round(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        cmd_summary(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
