#!/usr/bin/python3
"""bench/report.py DIR: the table of ratios and the plots of a bench/run.sh run.

Reads DIR's tp_sim JSON summaries, .hgrm files, /metrics scrapes, redis-benchmark CSV and
allocation counts; writes DIR/summary.md (also printed), DIR/latency.png (percentile
distributions at 100k ticks/s) and DIR/throughput.png (acked vs offered rate, p99 vs offered
rate) with gnuplot. Ratios are the result: every figure in a ratio comes from the same run on
the same machine."""
import csv
import glob
import json
import os
import re
import subprocess
import sys

SYSTEMS = [("tickplane", "tickplane (TLS)"), ("hiredis", "hiredis async + libuv (TCP)"),
           ("ioredis", "ioredis auto-pipelining (TLS)")]
REF_RATE = 100000


def load(d, name):
    try:
        with open(os.path.join(d, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def prom(d, name, metric):
    try:
        with open(os.path.join(d, name + ".prom")) as f:
            for line in f:
                if line.startswith(metric + " "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def acked_rate(r):
    """Frames acknowledged per second of the run (sending + waiting for the last acks)."""
    frames = r["ticks"]["acked_seq"] + r["orders"]["acked_seq"]
    return frames / r["end_s"] if r["end_s"] > 0 else 0.0


def lat(r, key):
    return r["ack_latency_us"].get(key) if r else None


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def ratio(a, b):
    return f"{a / b:.3g}x" if a is not None and b else "-"


def rates(d):
    found = set()
    for path in glob.glob(os.path.join(d, "tickplane-*.json")):
        m = re.fullmatch(r"tickplane-(\d+)\.json", os.path.basename(path))
        if m:
            found.add(int(m.group(1)))
    return sorted(found)


def redis_benchmark_rps(d, mode):
    try:
        with open(os.path.join(d, f"redis-benchmark-{mode}.csv")) as f:
            row = next(csv.reader(f))
            return float(row[1])
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def allocations(d, run):
    try:
        with open(os.path.join(d, run + ".log")) as f:
            for line in f:
                if '"msg":"allocations"' in line:
                    return json.loads(line)["count"]
    except (OSError, ValueError):
        pass
    return None


def latency_table(d, out):
    out.append("| system | offered ticks/s | acked frames/s | p50 | p90 | p99 | p99.9 | max "
               "| all acked | conflated ticks | HSETs |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|")
    for rate in rates(d):
        for sys_name, label in SYSTEMS:
            name = f"{sys_name}-{rate}"
            r = load(d, name)
            if r is None:
                out.append(f"| {label} | {rate:,} | run failed |||||||||")
                continue
            conf = prom(d, name, "tickplane_conflated_prices_total")
            writes = prom(d, name, "tickplane_price_writes_total")
            out.append(
                f"| {label} | {rate:,} | {acked_rate(r):,.0f} | {fmt(lat(r, 'p50'))} "
                f"| {fmt(lat(r, 'p90'))} | {fmt(lat(r, 'p99'))} | {fmt(lat(r, 'p99.9'))} "
                f"| {fmt(lat(r, 'max'))} | {'yes' if r['all_acked'] else 'NO'} "
                f"| {fmt(int(conf)) if conf is not None else 'n/a'} "
                f"| {fmt(int(writes if writes is not None else r['ticks']['acked_seq']))} |")
    mixed = load(d, "tickplane-mixed-100000")
    if mixed:
        out.append(
            f"| tickplane + {mixed['orders']['offered_rate']:,} order events/s | "
            f"{mixed['ticks']['offered_rate']:,} | {acked_rate(mixed):,.0f} "
            f"| {fmt(lat(mixed, 'p50'))} | {fmt(lat(mixed, 'p90'))} | {fmt(lat(mixed, 'p99'))} "
            f"| {fmt(lat(mixed, 'p99.9'))} | {fmt(lat(mixed, 'max'))} "
            f"| {'yes' if mixed['all_acked'] else 'NO'} | - | - |")
    out.append("")
    out.append("Latency in microseconds, from each frame's intended send time to the FeedAck "
               "that covers it (tp_sim, open loop). A peer writes one HSET per tick; tickplane "
               "conflates ticks of a symbol that arrive before its previous write was sent.")


def ratio_table(d, out):
    tls_ceiling = redis_benchmark_rps(d, "tls")
    plain_ceiling = redis_benchmark_rps(d, "plain")
    sat = {s: load(d, f"{s}-sat") for s, _ in SYSTEMS}
    sat_rate = {s: acked_rate(r) if r else None for s, r in sat.items()}
    sat_writes = prom(d, "tickplane-sat", "tickplane_price_writes_total")
    tp_sat_hsets = sat_writes / sat["tickplane"]["end_s"] if sat_writes and sat["tickplane"] \
        else None
    out.append("| figure | value | target |")
    out.append("|---|--:|--:|")
    out.append(f"| redis-benchmark -P 256 HSET/s, TLS (ceiling) | {fmt(tls_ceiling)} | |")
    out.append(f"| redis-benchmark -P 256 HSET/s, plain TCP | {fmt(plain_ceiling)} | |")
    for s, label in SYSTEMS:
        out.append(f"| {label}: ticks acked/s at saturation | {fmt(sat_rate[s])} | |")
    out.append(f"| tickplane HSET/s at saturation vs TLS ceiling "
               f"| {ratio(tp_sat_hsets, tls_ceiling)} | >= 0.9x |")
    out.append(f"| tickplane ticks/s at saturation vs TLS ceiling (ticks conflate into HSETs) "
               f"| {ratio(sat_rate['tickplane'], tls_ceiling)} | |")
    for s, label in SYSTEMS[1:]:
        out.append(f"| tickplane ticks/s vs {s} at saturation "
                   f"| {ratio(sat_rate['tickplane'], sat_rate[s])} | |")
    for rate in rates(d):
        tp = load(d, f"tickplane-{rate}")
        for s, label in SYSTEMS[1:]:
            peer = load(d, f"{s}-{rate}")
            target = "<= 0.5x" if s == "ioredis" else ""
            out.append(f"| p99 tickplane / {s} at {rate:,}/s "
                       f"| {ratio(lat(tp, 'p99'), lat(peer, 'p99'))} | {target} |")
    ref = load(d, f"tickplane-{REF_RATE}")
    out.append(f"| tickplane p99 at {REF_RATE:,} ticks/s, TLS | {fmt(lat(ref, 'p99'))} us "
               "| < 250 us |")
    out.append(f"| tickplane p99.9 at {REF_RATE:,} ticks/s, TLS | {fmt(lat(ref, 'p99.9'))} us "
               "| < 1,000 us |")
    a2, a6 = allocations(d, "alloc-2"), allocations(d, "alloc-6")
    r2, r6 = load(d, "alloc-2"), load(d, "alloc-6")
    if None not in (a2, a6, r2, r6):
        frames = lambda r: r["ticks"]["acked_seq"] + r["orders"]["acked_seq"]  # noqa: E731
        per = (a6 - a2) / max(frames(r6) - frames(r2), 1)
        out.append(f"| allocations per frame, steady state (100k ticks/s + 1k orders/s, TLS) "
                   f"| {per:.3f} | 0 |")
    try:
        with open(os.path.join(d, "tickplane-rss.kb")) as f:
            kb = int(f.read().strip())
        out.append(f"| tickplane peak RSS, 100,000 symbols | {kb / 1024:.1f} MB | < 50 MB |")
    except (OSError, ValueError):
        pass


def plot(d):
    series = [(f"{s}-{REF_RATE}.hgrm", label) for s, label in SYSTEMS]
    series.append(("tickplane-mixed-100000.hgrm", "tickplane + orders (TLS)"))
    series = [(f, l) for f, l in series if os.path.exists(os.path.join(d, f))]
    lines = ", ".join(f"'{f}' using 4:1 with lines lw 2 title '{l}'" for f, l in series)
    rows = []
    for rate in rates(d):
        row = [str(rate)]
        for s, _ in SYSTEMS:
            r = load(d, f"{s}-{rate}")
            row += [f"{acked_rate(r):.0f}" if r else "NaN", str(lat(r, "p99") or "NaN")]
        rows.append(" ".join(row))
    with open(os.path.join(d, "throughput.dat"), "w") as f:
        f.write("# offered " + " ".join(f"{s}_acked {s}_p99" for s, _ in SYSTEMS) + "\n")
        f.write("\n".join(rows) + "\n")
    script = f"""
set terminal pngcairo size 1000,600 font ',11'
set output 'latency.png'
set title 'Ack latency by percentile at {REF_RATE:,} ticks/s (intended send -> FeedAck)'
set logscale x
set logscale y
set xlabel 'percentile'
set ylabel 'latency (us)'
set xtics ('50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid
set key top left
plot {lines}
set output 'throughput.png'
set multiplot layout 1,2 title 'Offered vs acknowledged ticks/s, and p99 latency'
unset logscale
set xtics auto
set xlabel 'offered ticks/s'
set ylabel 'acked frames/s'
set title 'throughput'
plot 'throughput.dat' using 1:2 with linespoints lw 2 title 'tickplane', \\
     '' using 1:4 with linespoints lw 2 title 'hiredis', \\
     '' using 1:6 with linespoints lw 2 title 'ioredis', x with lines dt 2 title 'offered'
set logscale y
set ylabel 'p99 latency (us)'
set title 'p99'
plot 'throughput.dat' using 1:3 with linespoints lw 2 title 'tickplane', \\
     '' using 1:5 with linespoints lw 2 title 'hiredis', \\
     '' using 1:7 with linespoints lw 2 title 'ioredis'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, cwd=d, check=True)


def main():
    d = sys.argv[1]
    out = []
    with open(os.path.join(d, "date.txt")) as f:
        date = f.read().strip()
    with open(os.path.join(d, "machine.txt")) as f:
        machine = f.read().strip().replace("\n", "; ")
    out.append(f"Run {date} on: {machine}\n")
    out.append("### Ratios and targets\n")
    ratio_table(d, out)
    out.append("\n### Latency by offered rate\n")
    latency_table(d, out)
    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    plot(d)
    print(f"plots: {d}/latency.png {d}/throughput.png")


if __name__ == "__main__":
    main()
