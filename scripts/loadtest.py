#!/usr/bin/env python3
"""Load test of the service: `mpcformer dealer` + `mpcformer serve` + K concurrent `mpcformer query`
clients of M queries each, on loopback over mutual TLS, as separate processes.

Prints (and with --json, one JSON line) the throughput with one client and with K, the online
latency (p50, p95, max, from the server's log), the server's resident memory after warm-up (its
10th query) and at the end, and checks every answer against plaintext (cosine similarity).

    scripts/loadtest.py --model "$(scripts/fetch-assets.sh minilm)" --clients 4 --queries 25
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

SUBJECTS = ["the model", "a patient", "the bank", "our team", "the city", "a student", "the market", "my friend"]
VERBS = ["reads", "protects", "shares", "analyses", "questions", "improves", "keeps", "explains"]
OBJECTS = ["private records", "the weather report", "an old letter", "every transaction", "the results",
           "a short story", "the new policy", "its secrets"]


def sentence(i):
    """A distinct, ordinary sentence per index."""
    s, v, o = SUBJECTS[i % 8], VERBS[(i // 8) % 8], OBJECTS[(i // 64 + i) % 8]
    return f"{s} {v} {o} on day {i}, and nobody else learns anything about it."


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    """User + system CPU seconds of a running process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(math.ceil(q * len(values))) - 1)] if values else None


class Server:
    """A process that prints a `listening` line first, then JSON log lines."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = json.loads(self.proc.stdout.readline())
        assert first["event"] == "listening", first
        self.address = first["address"]
        self.lines, self.lock = [], threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.lines.append(value)

    def queries(self):
        return self.events("query")

    def events(self, kind):
        with self.lock:
            return [l for l in self.lines if l.get("event") == kind]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--queries", type=int, default=25)
    ap.add_argument("--preset", default=None, help="default: the checkpoint's")
    ap.add_argument("--bin", default=os.environ.get("MPCFORMER", "target/release/mpcformer"))
    ap.add_argument("--pool", type=int, default=0, help="serve --pool K and query --pool K")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    preset = ["--preset", a.preset] if a.preset else []
    ahead = ["--pool", str(a.pool)] if a.pool else []
    work = tempfile.mkdtemp(prefix="mpcformer-loadtest-")
    certs = os.path.join(work, "certs")
    subprocess.run([a.bin, "certs", "--out", certs], check=True, stdout=subprocess.DEVNULL)
    texts = [sentence(i) for i in range(a.clients * a.queries)]

    # Plaintext references, one process per text (the private answers are checked against them).
    expected = []
    for t in texts:
        out = subprocess.run([a.bin, "infer", "--model", a.model, "--text", t, "--setting", "plain", "--json"] + preset,
                             check=True, capture_output=True, text=True)
        expected.append(json.loads(out.stdout)["private"])

    dealer = Server([a.bin, "dealer", "--listen", "127.0.0.1:0", "--certs", certs])
    server = Server([a.bin, "serve", "--model", a.model, "--listen", "127.0.0.1:0", "--dealer", dealer.address,
                     "--certs", certs, "--max-sessions", str(a.clients)] + preset + ahead)

    def run_clients(groups):
        """Runs one client per group of text indices, concurrently; returns wall seconds, answers,
        failures and the CPU cores kept busy on average (server, dealer and clients)."""
        answers = {}
        cpu_before = cpu_seconds(server.proc.pid) + cpu_seconds(dealer.proc.pid) + sum(os.times()[2:4])
        procs = []
        for g, indices in enumerate(groups):
            path = os.path.join(work, f"texts-{len(groups)}-{g}.txt")
            with open(path, "w") as f:
                f.write("\n".join(texts[i] for i in indices))
            procs.append((indices, subprocess.Popen(
                [a.bin, "query", "--server", server.address, "--dealer", dealer.address, "--model", a.model,
                 "--file", path, "--certs", certs, "--json"] + preset + ahead,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        start = time.time()
        failures = []
        for indices, p in procs:
            out, err = p.communicate()
            if p.returncode != 0:
                failures.append(err.strip())
            for line in out.splitlines():
                v = json.loads(line)
                answers[indices[v["text_index"]]] = v
        wall = time.time() - start
        cpu = cpu_seconds(server.proc.pid) + cpu_seconds(dealer.proc.pid) + sum(os.times()[2:4]) - cpu_before
        return wall, answers, failures, cpu / wall

    # Warm-up and the one-client rate: one client, M queries.
    one_wall, one_answers, one_fail, one_busy = run_clients([list(range(a.queries))])
    # The server ends a session after the client has gone (with --pool, after making material
    # the next query would have used): wait for it, so that its slot is free for the next phase.
    deadline = time.time() + 120
    while not server.events("session") and time.time() < deadline:
        time.sleep(0.1)
    rss_warm, rss_last, rss_samples = None, None, []
    done = threading.Event()

    def sample():
        nonlocal rss_warm, rss_last
        base = len(server.queries())
        while not done.is_set():
            r = rss_bytes(server.proc.pid)
            rss_samples.append(r)
            answered = len(server.queries()) - base
            if rss_warm is None and answered >= 10:
                rss_warm = r
            if answered < len(texts) - 1:
                rss_last = r
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    groups = [list(range(c * a.queries, (c + 1) * a.queries)) for c in range(a.clients)]
    many_wall, many_answers, many_fail, many_busy = run_clients(groups)
    done.set()
    sampler.join()
    rss_end = rss_bytes(server.proc.pid)
    server_log = server.queries()
    server.stop()
    dealer.stop()

    cos = [cosine(many_answers[i]["output"], expected[i]) for i in range(len(texts)) if i in many_answers]
    online = [q["online_s"] for q in server_log[a.queries:]]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    result = {
        "cpu": cpu, "clients": a.clients, "queries_per_client": a.queries, "pool": a.pool,
        "answers": len(cos), "expected_answers": len(texts), "failures": one_fail + many_fail,
        "min_cosine": min(cos) if cos else None, "agree": sum(c >= 0.999 for c in cos),
        "one_client_qps": a.queries / one_wall, "many_clients_qps": len(texts) / many_wall,
        "speedup": (len(texts) / many_wall) / (a.queries / one_wall),
        "online_p50_s": percentile(online, 0.5), "online_p95_s": percentile(online, 0.95), "online_max_s": max(online or [0]),
        "cpu_cores_busy_one_client": one_busy, "cpu_cores_busy_many_clients": many_busy,
        "server_rss_warm_bytes": rss_warm, "server_rss_last_query_bytes": rss_last, "server_rss_end_bytes": rss_end,
        "server_rss_growth": (rss_last / rss_warm - 1) if rss_warm and rss_last else None,
        "server_rss_peak_bytes": max([r for r in rss_samples if r] or [0]),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"load test on {cpu}: {a.clients} clients x {a.queries} queries")
        print(f"  answers {result['answers']}/{len(texts)}, agreeing with plaintext (cosine >= 0.999): "
              f"{result['agree']}, worst cosine {result['min_cosine']:.6f}")
        print(f"  throughput: one client {result['one_client_qps']:.2f} q/s, {a.clients} clients "
              f"{result['many_clients_qps']:.2f} q/s ({result['speedup']:.2f}x); CPU cores busy "
              f"{one_busy:.2f} with one client, {many_busy:.2f} with {a.clients} (of {os.cpu_count()})")
        print(f"  online latency: p50 {result['online_p50_s']:.3f} s, p95 {result['online_p95_s']:.3f} s, "
              f"max {result['online_max_s']:.3f} s")
        print(f"  server RSS: at query 10 {result['server_rss_warm_bytes'] / 1e6:.0f} MB, at query {len(texts) - 1} "
              f"{result['server_rss_last_query_bytes'] / 1e6:.0f} MB ({100 * result['server_rss_growth']:+.1f} %), peak "
              f"{result['server_rss_peak_bytes'] / 1e6:.0f} MB, after the sessions closed "
              f"{result['server_rss_end_bytes'] / 1e6:.0f} MB")
        for f in result["failures"]:
            print(f"  failure: {f}")
    ok = result["answers"] == len(texts) and result["agree"] == len(texts) and not result["failures"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
