#!/usr/bin/python3
"""bench/perf_summary.py TITLE < `perf script` output: where a process's CPU went, as markdown.

Reads the samples of one `perf record -g` (frame pointers: tickplane's own code has them,
Debian's libraries mostly not, so a stack may stop at the first library frame) and prints
  * the share of samples per component (the program's own code, libssl, libcrypto, libuv,
    libc, the kernel by what it was doing);
  * the hottest functions by self time;
  * the hottest by inclusive time (on the stack at all): the text form of a flame graph.
"""
import collections
import re
import sys

TOP = 12
# A kernel function on the stack says what the kernel was doing for the process.
KERNEL_WORK = (("tcp_sendmsg", "kernel: TCP send"), ("tcp_recvmsg", "kernel: TCP receive"),
               ("ep_poll", "kernel: epoll wait"), ("do_epoll_wait", "kernel: epoll wait"),
               ("schedule", "kernel: scheduling"), ("page_fault", "kernel: page faults"),
               ("exc_page_fault", "kernel: page faults"), ("futex", "kernel: futex"))


def samples(lines):
    """Yields each sample's frames, innermost first, as (symbol, dso)."""
    frames = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            if frames:
                yield frames
            frames = []
            continue
        if not line.startswith((" ", "\t")):
            continue  # the sample's header: comm, pid, time, event
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
            frames.append((sym, m.group(2)))
    if frames:
        yield frames


def component(frames):
    dso = frames[0][1]
    if "kernel" in dso or dso.startswith("[k"):
        for f, _ in frames:
            for needle, name in KERNEL_WORK:
                if needle in f:
                    return name
        return "kernel: other"
    base = dso.rsplit("/", 1)[-1]
    if base == "redis-check-rdb":  # Debian's redis-server is a link to it
        return "redis-server"
    for lib in ("libssl", "libcrypto", "libuv", "libc.so", "libhiredis"):
        if base.startswith(lib):
            return lib.removesuffix(".so")
    return base


def main():
    title = sys.argv[1] if len(sys.argv) > 1 else "profile"
    comp, self_time, incl = collections.Counter(), collections.Counter(), collections.Counter()
    n = 0
    for frames in samples(sys.stdin):
        n += 1
        comp[component(frames)] += 1
        self_time[frames[0][0]] += 1
        for sym in {f for f, _ in frames} - {"[unknown]"}:
            incl[sym] += 1
    if n == 0:
        print(f"#### {title}\n\nno samples\n")
        return
    pct = lambda c: f"{100 * c / n:.1f}%"  # noqa: E731
    print(f"#### {title} ({n} samples)\n")
    print("| component | share |\n|---|--:|")
    for name, c in comp.most_common(TOP):
        print(f"| {name} | {pct(c)} |")
    print("\n| function (self) | share | function (inclusive) | share |\n|---|--:|---|--:|")
    for (s1, c1), (s2, c2) in zip(self_time.most_common(TOP), incl.most_common(TOP)):
        print(f"| `{s1}` | {pct(c1)} | `{s2}` | {pct(c2)} |")
    print()


if __name__ == "__main__":
    main()
