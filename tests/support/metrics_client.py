"""tickplane's HTTP endpoints as a monitoring system sees them: fetched with curl,
/metrics parsed by prometheus_client's text-format parser (Debian's
python3-prometheus-client), code nobody here wrote, so a page Prometheus could not
ingest fails here rather than in production."""
import subprocess

from prometheus_client.parser import text_string_to_metric_families

PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def get(port, path, method="GET"):
    """(status, content type, body) of one request; for HEAD, the response head
    stands in for the body."""
    how = ["--head"] if method == "HEAD" else ["-X", method]
    cmd = ["curl", "-sS", "--max-time", "10", *how, "-o", "-",
           "-w", "\n%{http_code} %{content_type}", f"http://127.0.0.1:{port}{path}"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            stdout, stderr = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            # A zombie here means curl is done but something else holds its pipes open.
            state = process_state(p.pid)
            p.kill()
            raise RuntimeError(f"curl {path}: no EOF after 20 s: curl {state}") from None
    if p.returncode != 0:
        raise RuntimeError(f"curl {path}: exit {p.returncode}: {stderr.strip()}")
    body, _, status = stdout.rpartition("\n")
    code, _, ctype = status.partition(" ")
    return int(code), ctype, body


def process_state(pid):
    """A process's state and where it blocks, from /proc: for a request that outlived its
    timeout."""
    out = []
    for name in ("stat", "wchan"):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                out.append(f"{name}: {f.read().strip()}")
        except OSError as e:
            out.append(f"{name}: {e.strerror}")
    return "; ".join(out)


class Scrape:
    """One /metrics page: samples by (name, labels)."""

    def __init__(self, port):
        code, ctype, text = get(port, "/metrics")
        if code != 200 or ctype != PROM_TYPE:
            raise RuntimeError(f"/metrics: status {code}, content type '{ctype}'")
        self.families = {}
        self.samples = {}
        for fam in text_string_to_metric_families(text):
            self.families[fam.name] = fam
            for s in fam.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name, **labels):
        return self.samples[(name, frozenset(labels.items()))]

    def histogram(self, name, **labels):
        """([(le, cumulative count)] in le order, sum, count)."""
        buckets = []
        for (n, lab), v in self.samples.items():
            d = dict(lab)
            le = d.pop("le", None)
            if n == f"{name}_bucket" and d == labels:
                buckets.append((float(le), v))
        buckets.sort()
        return buckets, self.value(f"{name}_sum", **labels), self.value(f"{name}_count", **labels)
