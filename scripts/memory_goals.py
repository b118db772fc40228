#!/usr/bin/env python3
"""Memory goals of the hardening issue, measured on the release mall (stdlib only).

    cargo build --release --example mall
    python3 scripts/memory_goals.py [target/release/examples/mall]

Starts the mall on a fresh SQLite file and a free loopback port (throttles raised out of the
way), then measures how much its resident set grows:

  rotations  8 sessions x 4,000 refresh rotations (32,000)        goal <= 8 MiB
  junk       3,000 goods-list reads of ~600 KB pages with junk     goal <= 64 MiB
             query parameters (?page_size=100&junk=N)
  guesses    200 concurrent wrong-password logins (peak RSS)       goal <= 256 MiB

Every request stays on 127.0.0.1; the script stops the mall when it is done.
"""

import concurrent.futures
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

MALL = sys.argv[1] if len(sys.argv) > 1 else "target/release/examples/mall"
ADMIN_PASSWORD = "admin-password-for-measuring"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, token=None):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"JWT {token}"
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def start(db_path, port):
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite://{db_path}",
        WXREST_BIND=f"127.0.0.1:{port}",
        RUST_LOG="error",
        MALL_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MALL_THROTTLE_ANON="100000000/min",
        MALL_THROTTLE_USER="100000000/min",
        MALL_THROTTLE_LOGIN="100000000/min",
    )
    proc = subprocess.Popen([MALL, "serve"], env=env)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the mall did not start")


def seed_big_goods(db_path, n=200, description_bytes=5800):
    subprocess.run([MALL, "migrate"], env=dict(os.environ, DATABASE_URL=f"sqlite://{db_path}",
                                               RUST_LOG="error"), check=True,
                   stdout=subprocess.DEVNULL)
    db = sqlite3.connect(db_path)
    db.execute("INSERT INTO categories (name, sort_order) VALUES ('big', 0)")
    category = db.execute("SELECT MAX(id) FROM categories").fetchone()[0]
    for i in range(n):
        db.execute(
            "INSERT INTO goods (name, description, price, stock, on_sale, category, created_at)"
            " VALUES (?, ?, ?, ?, 1, ?, ?)",
            (f"goods {i}", ("tea leaves " * 600)[:description_bytes], 100 + i, 1000, category, i),
        )
    db.commit()
    db.close()


def measure_rotations(port, pid):
    clients = [Client(port) for _ in range(8)]
    refresh = []
    for i, c in enumerate(clients):
        status, body = c.call("POST", "/auth/wx-login/", {"code": f"rotate-{i}"})
        assert status == 200, body
        refresh.append(body["refresh"])

    def rotate(i, times):
        c = clients[i]
        for _ in range(times):
            status, body = c.call("POST", "/auth/token/refresh/", {"refresh": refresh[i]})
            assert status == 200, body
            refresh[i] = body["refresh"]

    for i in range(8):
        rotate(i, 100)  # warm up allocator and caches
    before = rss_kib(pid)
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: rotate(i, 4000), range(8)))
    after = rss_kib(pid)
    return before, after, time.time() - started


def measure_junk(port, pid):
    c = Client(port)
    status, body = c.call("POST", "/auth/wx-login/", {"code": "junk-reader"})
    assert status == 200, body
    token = body["token"]
    status, page = c.call("GET", "/mall/goods/?page_size=100", token=token)
    assert status == 200, page
    page_bytes = len(json.dumps(page))
    for n in range(20):
        c.call("GET", f"/mall/goods/?page_size=100&junk=warm{n}", token=token)
    before = rss_kib(pid)
    for n in range(3000):
        status, _ = c.call("GET", f"/mall/goods/?page_size=100&junk={n}", token=token)
        assert status == 200
    after = rss_kib(pid)
    return before, after, page_bytes


def measure_guesses(port, pid):
    before = rss_kib(pid)

    def guess(i):
        c = Client(port)
        status, _ = c.call("POST", "/auth/token/", {"username": "admin", "password": f"wrong-{i}"})
        return status

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(guess, range(200)))
    peak = rss_kib(pid, "VmHWM")
    return before, peak, {s: statuses.count(s) for s in set(statuses)}


def main():
    work = tempfile.mkdtemp(prefix="wxrest-memory-")
    db_path = os.path.join(work, "mall.db")
    seed_big_goods(db_path)
    port = free_port()
    proc = start(db_path, port)
    try:
        mib = lambda kib: kib / 1024
        before, after, took = measure_rotations(port, proc.pid)
        print(f"rotations: 32000 in {took:.1f} s, RSS {mib(before):.1f} -> {mib(after):.1f} MiB"
              f" (+{mib(after - before):.1f} MiB; goal <= 8)")
        before, after, page = measure_junk(port, proc.pid)
        print(f"junk: 3000 reads of {page / 1024:.0f} KB pages, RSS {mib(before):.1f} -> "
              f"{mib(after):.1f} MiB (+{mib(after - before):.1f} MiB; goal <= 64)")
        before, peak, statuses = measure_guesses(port, proc.pid)
        print(f"guesses: 200 concurrent, RSS {mib(before):.1f} MiB, peak {mib(peak):.1f} MiB"
              f" (goal <= 256); statuses {statuses}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
