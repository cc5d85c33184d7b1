#!/usr/bin/python3
"""bench/report.py DIR: the table of ratios and the plots of a bench/run.sh run.

Reads DIR's tp_sim JSON summaries, .hgrm files, .cpu samples, /metrics scrapes, redis-benchmark
CSV and allocation counts; writes DIR/summary.md (also printed), DIR/latency.png (percentile
distributions at 100k ticks/s, first round) and DIR/throughput.png (median p50 and p99 by
offered rate) with gnuplot.

Every latency row ran in each of the run's rounds (ROW-RATE-rK.json); a figure is the median
over the rounds, with the lowest and highest beside it, so the noise of this machine shows.
Ratios divide medians of the same session, each row by the hiredis peer over plain TCP at the
same rate. CPU per frame is user + sys time of a process during the tp_sim run, divided by the
frames acked, for the system under test and for redis-server."""
import csv
import glob
import json
import os
import re
import statistics
import subprocess
import sys

ROWS = [("tickplane-tls", "tickplane (TLS)"), ("tickplane-tcp", "tickplane (TCP)"),
        ("hiredis-tcp", "hiredis async + libuv (TCP)"),
        ("floor", "floor: ack on decode, no Redis"),
        ("ioredis-tls", "ioredis auto-pipelining (TLS)"), ("glide-tls", "Valkey GLIDE (TLS)")]
REFERENCE = "hiredis-tcp"
TARGETS = {"tickplane-tls": 1.0, "tickplane-tcp": 0.8}  # latency ratio to REFERENCE, at most
SATURATION_ROWS = ["tickplane-tls", "tickplane-tcp", "hiredis-tcp"]
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


def frames(r):
    return r["ticks"]["acked_seq"] + r["orders"]["acked_seq"]


def acked_rate(r):
    """Frames acknowledged per second of the run (sending + waiting for the last acks)."""
    return frames(r) / r["end_s"] if r["end_s"] > 0 else 0.0


def lat(r, key):
    return r["ack_latency_us"].get(key) if r else None


def cpu_us_per_frame(d, name, r):
    """(system under test, redis-server) CPU microseconds per acked frame, or (None, None)."""
    try:
        with open(os.path.join(d, name + ".cpu")) as f:
            hz, s0, s1, r0, r1 = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None, None
    n = frames(r) if r else 0
    if n == 0:
        return None, None
    return (s1 - s0) / hz * 1e6 / n, (r1 - r0) / hz * 1e6 / n


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def rates_and_rounds(d):
    rates, rounds = set(), set()
    for path in glob.glob(os.path.join(d, "*-r*.json")):
        m = re.fullmatch(r".+-(\d+)-r(\d+)\.json", os.path.basename(path))
        if m:
            rates.add(int(m.group(1)))
            rounds.add(int(m.group(2)))
    return sorted(rates), sorted(rounds)


class Cell:
    """One row at one rate over the rounds: medians and ranges."""

    def __init__(self, d, row, rate, rounds):
        self.runs = []
        for k in rounds:
            name = f"{row}-{rate}-r{k}"
            r = load(d, name)
            if r is not None:
                self.runs.append((name, r))
        self.all_acked = all(r["all_acked"] for _, r in self.runs)
        self.cpu = [cpu_us_per_frame(d, n, r) for n, r in self.runs]

    def values(self, key):
        return [v for v in (lat(r, key) for _, r in self.runs) if v is not None]

    def median(self, key):
        v = self.values(key)
        return statistics.median(v) if v else None

    def spread(self, key):
        """'median (lowest-highest)' over the rounds."""
        v = self.values(key)
        if not v:
            return "-"
        if len(v) == 1:
            return fmt(v[0])
        return f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})"

    def cpu_median(self, which):
        v = [c[which] for c in self.cpu if c[which] is not None]
        return statistics.median(v) if v else None

    def rate(self):
        v = [acked_rate(r) for _, r in self.runs]
        return statistics.median(v) if v else None


def cells(d):
    rates, rounds = rates_and_rounds(d)
    return rates, rounds, {(row, rate): Cell(d, row, rate, rounds)
                           for row, _ in ROWS for rate in rates}


def latency_table(d, out, rates, table):
    out.append("| system | offered ticks/s | acked frames/s | p50 | p90 | p99 | p99.9 "
               "| CPU us/frame: system | CPU us/frame: Redis | all acked |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|")
    for rate in rates:
        for row, label in ROWS:
            c = table[(row, rate)]
            if not c.runs:
                out.append(f"| {label} | {rate:,} | not run |||||||||")
                continue
            out.append(
                f"| {label} | {rate:,} | {fmt(c.rate())} | {c.spread('p50')} "
                f"| {c.spread('p90')} | {c.spread('p99')} | {c.spread('p99.9')} "
                f"| {fmt(c.cpu_median(0), 2)} | {fmt(c.cpu_median(1), 2)} "
                f"| {'yes' if c.all_acked else 'NO'} |")
    mixed = load(d, "tickplane-mixed-100000")
    if mixed:
        sut, red = cpu_us_per_frame(d, "tickplane-mixed-100000", mixed)
        out.append(
            f"| tickplane (TLS) + {mixed['orders']['offered_rate']:,} order events/s | "
            f"{mixed['ticks']['offered_rate']:,} | {acked_rate(mixed):,.0f} "
            f"| {fmt(lat(mixed, 'p50'))} | {fmt(lat(mixed, 'p90'))} | {fmt(lat(mixed, 'p99'))} "
            f"| {fmt(lat(mixed, 'p99.9'))} | {fmt(sut, 2)} | {fmt(red, 2)} "
            f"| {'yes' if mixed['all_acked'] else 'NO'} |")
    out.append("")
    out.append("Latency in microseconds, from each frame's intended send time to the FeedAck "
               "that covers it (tp_sim, open loop): the median over the rounds, lowest-highest "
               "in brackets. A peer writes one HSET per tick; tickplane conflates ticks of a "
               "symbol that arrive before its previous write was sent.")


def ratio_table(out, rates, table):
    out.append("| offered ticks/s | system | p50 / hiredis TCP | p99 / hiredis TCP "
               "| p99.9 / hiredis TCP | target (p50 and p99) |")
    out.append("|--:|---|--:|--:|--:|--:|")
    for rate in rates:
        ref = table[(REFERENCE, rate)]
        for row, label in ROWS:
            if row == REFERENCE or not table[(row, rate)].runs:
                continue
            c = table[(row, rate)]
            target = f"<= {TARGETS[row]}x" if row in TARGETS else ""
            out.append(f"| {rate:,} | {label} | {ratio(c.median('p50'), ref.median('p50'))} "
                       f"| {ratio(c.median('p99'), ref.median('p99'))} "
                       f"| {ratio(c.median('p99.9'), ref.median('p99.9'))} | {target} |")


def redis_benchmark_rps(d, mode):
    try:
        with open(os.path.join(d, f"redis-benchmark-{mode}.csv")) as f:
            return float(next(csv.reader(f))[1])
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


def figures_table(d, out):
    tls_ceiling = redis_benchmark_rps(d, "tls")
    out.append("| figure | value | target |")
    out.append("|---|--:|--:|")
    out.append(f"| redis-benchmark -P 256 HSET/s, TLS (ceiling) | {fmt(tls_ceiling)} | |")
    out.append(f"| redis-benchmark -P 256 HSET/s, plain TCP | "
               f"{fmt(redis_benchmark_rps(d, 'plain'))} | |")
    for row in SATURATION_ROWS:
        r = load(d, f"{row}-sat")
        label = dict(ROWS)[row]
        out.append(f"| {label}: ticks acked/s at saturation | {fmt(acked_rate(r) if r else None)} "
                   "| |")
        writes = prom(d, f"{row}-sat", "tickplane_price_writes_total")
        if writes and r:
            ceiling = tls_ceiling if row.endswith("tls") else redis_benchmark_rps(d, "plain")
            out.append(f"| {label}: HSET/s at saturation vs redis-benchmark, same transport "
                       f"| {ratio(writes / r['end_s'], ceiling)} "
                       f"| {'>= 0.95x' if row == 'tickplane-tls' else ''} |")
    a2, a6 = allocations(d, "alloc-2"), allocations(d, "alloc-6")
    r2, r6 = load(d, "alloc-2"), load(d, "alloc-6")
    if None not in (a2, a6, r2, r6):
        per = (a6 - a2) / max(frames(r6) - frames(r2), 1)
        out.append(f"| allocations per frame, steady state (100k ticks/s + 1k orders/s, TLS) "
                   f"| {per:.4f} | 0 per tick |")
    for name, what in (("tickplane-rss", "100,000 symbols"),
                       ("tickplane-rss-book", "100,000 symbols + 100,000 open orders")):
        try:
            with open(os.path.join(d, name + ".kb")) as f:
                kb = int(f.read().strip())
            out.append(f"| tickplane peak RSS, {what} | {kb / 1024:.1f} MB | <= 50 MB |")
        except (OSError, ValueError):
            pass


def plot(d, rates, rounds, table):
    first = rounds[0] if rounds else 1
    series = [(f"{row}-{REF_RATE}-r{first}.hgrm", label) for row, label in ROWS]
    series = [(f, l) for f, l in series if os.path.exists(os.path.join(d, f))]
    if not series:
        return
    lines = ", ".join(f"'{f}' using 4:1 with lines lw 2 title '{l}'" for f, l in series)
    with open(os.path.join(d, "throughput.dat"), "w") as f:
        f.write("# offered " + " ".join(f"{row}_p50 {row}_p99" for row, _ in ROWS) + "\n")
        for rate in rates:
            row_vals = [str(rate)]
            for row, _ in ROWS:
                c = table[(row, rate)]
                row_vals += [str(c.median("p50") or "NaN"), str(c.median("p99") or "NaN")]
            f.write(" ".join(row_vals) + "\n")
    p50 = ", ".join(f"'throughput.dat' using 1:{2 + 2 * i} with linespoints lw 2 title '{l}'"
                    for i, (_, l) in enumerate(ROWS))
    p99 = ", ".join(f"'throughput.dat' using 1:{3 + 2 * i} with linespoints lw 2 title '{l}'"
                    for i, (_, l) in enumerate(ROWS))
    script = f"""
set terminal pngcairo size 1000,600 font ',11'
set output 'latency.png'
set title 'Ack latency by percentile at {REF_RATE:,} ticks/s, round {first} (intended send -> FeedAck)'
set logscale x
set logscale y
set xlabel 'percentile'
set ylabel 'latency (us)'
set xtics ('50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000)
set grid
set key top left
plot {lines}
set output 'throughput.png'
set multiplot layout 1,2 title 'Median latency over the rounds by offered rate'
unset logscale x
set xtics auto
set xlabel 'offered ticks/s'
set ylabel 'latency (us)'
set key top left font ',9'
set title 'p50'
plot {p50}
set title 'p99'
plot {p99}
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
    rates, rounds, table = cells(d)
    out.append(f"Run {date} on: {machine}; {len(rounds)} round(s)\n")
    out.append("### Latency ratios against the hiredis peer over plain TCP (medians)\n")
    ratio_table(out, rates, table)
    out.append("\n### Other figures\n")
    figures_table(d, out)
    out.append("\n### Latency and CPU by offered rate\n")
    latency_table(d, out, rates, table)
    text = "\n".join(out) + "\n"
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    plot(d, rates, rounds, table)
    print(f"plots: {d}/latency.png {d}/throughput.png")


if __name__ == "__main__":
    main()
