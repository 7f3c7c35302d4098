"""Benchmark duplicate detection: precision/recall on the demo's planted duplicates, and time at scale.

    .venv/bin/python bench/duplicates.py [--demo-customers 2000] [--demo-seed 7] [--synthetic 1000000] [--skip-demo]

1. Demo accuracy: start a sandbox, seed it (`python -m sandbox.seed --truth-file`), sync it into a fresh
   SQLite cache with `lib.sync.run_sync`, run `lib.duplicates.detect` and compare with the planted clusters
   pair by pair (precision = linked pairs that are planted; recall = planted pairs that are linked).
2. Scale: write N synthetic customers (with planted duplicates of every signal, and look-alikes that must
   NOT link: same name at a public mail domain, family members at one address) straight into SQLite, then
   time `detect` and report its precision/recall there too.

The last line of output is ONE JSON object with every figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.db import get_engine, migrate  # noqa: E402
from lib.normalize import canonical_email, fold_name, normalize_email, normalize_phone  # noqa: E402


def pairs_of(clusters: list[list[str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for members in clusters:
        for a, b in itertools.combinations(sorted(set(members)), 2):
            out.add((a, b))
    return out


def score(found: list[list[str]], truth: list[list[str]]) -> dict[str, float | int]:
    p, t = pairs_of(found), pairs_of(truth)
    hit = len(p & t)
    return {"precision": round(hit / len(p), 4) if p else 1.0, "recall": round(hit / len(t), 4) if t else 1.0,
            "found_pairs": len(p), "planted_pairs": len(t)}


def detect_clusters(url: str) -> tuple[list[list[str]], float]:
    from sqlmodel import Session

    from lib.duplicates import detect

    with Session(get_engine(url)) as session:
        started = time.perf_counter()
        result = detect(session=session)
        return [c.customer_ids for c in result.clusters], time.perf_counter() - started


# --- 1. the demo data ---------------------------------------------------------------------------


def demo(customers: int, workdir: Path, seed: int) -> dict[str, object]:
    from sandbox.process import free_port, wait_http_ok

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen([sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_http_ok(base + "/_sandbox/health", timeout=30, proc=sandbox)
        truth_file = workdir / "truth.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sandbox.seed", "--api-base", base, "--customers", str(customers),
                        "--seed", str(seed), "--truth-file", str(truth_file), "--webhook-url", ""],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        seed_s = time.perf_counter() - t0
        truth = json.loads(truth_file.read_text())
        url = f"sqlite:///{workdir / 'demo.db'}"
        os.environ.update({"STRIPE_API_BASE": base, "STRIPE_API_KEY": "sk_test_bench", "DATABASE_URL": url,
                           "STRIPE_REQUESTS_PER_SECOND": "200"})
        from lib.config import get_settings

        get_settings.cache_clear()
        migrate(url)
        from lib.sync import run_sync

        t0 = time.perf_counter()
        result = run_sync(mode="full")
        sync_s = time.perf_counter() - t0
        if result.status != "succeeded":
            raise SystemExit(f"sync failed: {result.error}")
        found, seconds = detect_clusters(url)
        return {"seed": seed, "customers": truth["customers"], "planted_clusters": len(truth["clusters"]),
                "found_clusters": len(found), **score(found, truth["clusters"]), "detect_seconds": round(seconds, 3),
                "seed_seconds": round(seed_s, 1), "sync_seconds": round(sync_s, 1)}
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


# --- 2. synthetic scale -------------------------------------------------------------------------

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
         "Élodie", "José", "Zoë", "Søren", "Aiko", "Chen", "Fatima", "Olga", "Priya", "Mateo", "Amara", "Lars"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
        "Müller", "Schmidt", "Dubois", "Rossi", "Nakamura", "Kowalski", "Novak", "Jensen", "Silva", "Costa"]
PUBLIC = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de"]
STREETS = ["Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "High St", "Park Ave"]
SYLLABLES = ["an", "ber", "cas", "dor", "el", "fen", "gar", "hol", "is", "jan", "kov", "lin", "mar", "nor", "os",
             "par", "quin", "ros", "sten", "tal", "ur", "vel", "wes", "yan", "zel"]
KINDS = ["email_case", "email_plus", "gmail_dots", "phone", "card", "name_domain", "name_address"]


def synthetic(n: int, path: Path, rng: random.Random) -> list[list[str]]:
    """Write n customers (about 2% planted duplicates) straight into a migrated SQLite file."""
    url = f"sqlite:///{path}"
    migrate(url)
    get_engine(url).dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    created = "2025-06-01 00:00:00.000000"
    cust_rows: list[tuple] = []
    pm_rows: list[tuple] = []
    truth: list[list[str]] = []
    n_companies = max(1, n // 8)

    def person(i: int) -> dict:
        first = rng.choice(FIRST)
        # Real surnames are far more varied than a short list: most are made of syllables here.
        last = rng.choice(LAST) if rng.random() < 0.2 else "".join(rng.choices(SYLLABLES, k=3)).title()
        if rng.random() < 0.6:
            local = f"{fold_name(first)}.{fold_name(last)}{i}".replace(" ", "")
            domain = rng.choice(PUBLIC)
        else:
            local = f"{fold_name(first)[0]}{fold_name(last)}{i}".replace(" ", "")
            domain = f"company{rng.randrange(n_companies)}.test"
        p = {"id": f"cus_S{i:08d}", "name": f"{first} {last}", "email": f"{local}@{domain}", "phone": None,
             "address": {}, "card": f"fp{i:09d}" if rng.random() < 0.7 else None}
        if rng.random() < 0.35:
            p["phone"] = f"+1 {200 + i % 700:03d} {i // 10000 % 1000:03d} {i % 10000:04d}"
        if rng.random() < 0.4:
            p["address"] = {"line1": f"{1 + i % 9999} {rng.choice(STREETS)} #{i}", "postal_code": f"{i % 99999:05d}",
                            "country": "US"}
        return p

    def add(p: dict) -> None:
        cust_rows.append((p["id"], p["email"], normalize_email(p["email"]), canonical_email(p["email"]), p["name"],
                          fold_name(p["name"]), p["phone"], normalize_phone(p["phone"]), created,
                          json.dumps(p["address"]), "{}", now))
        if p["card"]:
            pm_rows.append((f"pm_{p['id']}", p["id"], "card", "4242", p["card"], now))

    def flush() -> None:
        con.executemany(
            "INSERT INTO customers (id, email, email_normalized, email_canonical, name, name_search, phone, "
            "phone_normalized, created, address, metadata, balance, delinquent, deleted, mrr, livemode, version_ts,"
            " synced_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,0,0,0,0,0,0,?)", cust_rows)
        con.executemany("INSERT INTO payment_methods (id, customer_id, type, card_last4, card_fingerprint, livemode,"
                        " version_ts, synced_at) VALUES (?,?,?,?,?,0,0,?)", pm_rows)
        cust_rows.clear()
        pm_rows.clear()

    now = created
    i = 0
    while i < n:
        p = person(i)
        i += 1
        r = rng.random()
        if r < 0.02 and i < n:  # a planted duplicate of p
            kind = rng.choice(KINDS)
            d = {**p, "id": f"cus_S{i:08d}", "card": None, "phone": None, "address": {}}
            local, _, domain = p["email"].partition("@")
            if kind == "email_case":
                d["email"] = p["email"].upper()
            elif kind == "email_plus":
                d["email"] = f"{local}+shop@{domain}"
            elif kind == "gmail_dots":
                p["email"] = f"{local}@gmail.com"
                d["email"] = f"{local.replace('.', '')}@googlemail.com"
            elif kind == "phone":
                p["phone"] = p["phone"] or f"+1 415 {i // 10000 % 1000:03d} {i % 10000:04d}"
                d["phone"] = "(" + p["phone"][3:6] + ") " + p["phone"][7:].replace(" ", "-")
                d["email"] = f"other{i}@{rng.choice(PUBLIC)}"
            elif kind == "card":
                p["card"] = p["card"] or f"fp{i:09d}x"
                d["card"], d["email"] = p["card"], f"other{i}@{rng.choice(PUBLIC)}"
            elif kind == "name_domain":
                p["email"] = f"{local}@company{i % n_companies}.test"
                d["email"] = f"{fold_name(p['name']).split()[0]}.{i}@company{i % n_companies}.test"
                d["name"] = p["name"].upper()
            elif kind == "name_address":
                p["address"] = {"line1": f"{i % 999} Birch Way #{i}", "postal_code": "94110", "country": "US"}
                d["address"] = {**p["address"], "line1": p["address"]["line1"].upper()}
                d["email"] = f"other{i}@{rng.choice(PUBLIC)}"
            add(p)
            add(d)
            truth.append([p["id"], d["id"]])
            i += 1
        elif r < 0.025 and i < n:  # a look-alike that must NOT link: same name, public mail, same street
            q = person(i)
            q["name"] = p["name"]
            q["email"] = f"x{i}@{p['email'].partition('@')[2] if p['email'].endswith(tuple(PUBLIC)) else 'gmail.com'}"
            if p["address"]:
                q["address"] = {**p["address"]}
                q["name"] = rng.choice(FIRST) + " Q. " + p["name"].split()[-1]
            add(p)
            add(q)
            i += 1
        else:
            add(p)
        if len(cust_rows) >= 50_000:
            flush()
    flush()
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-customers", type=int, default=2000)
    ap.add_argument("--synthetic", type=int, default=1_000_000)
    ap.add_argument("--demo-seed", type=int, default=7, help="the seeder's random seed (7 is `make demo`'s)")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--workdir", help="keep the databases and truth file here (default: a temporary folder)")
    args = ap.parse_args()
    out: dict[str, object] = {"benchmark": "duplicates"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_demo:
            out["demo"] = demo(args.demo_customers, work, args.demo_seed)
            print("demo:", out["demo"], flush=True)
        t0 = time.perf_counter()
        truth = synthetic(args.synthetic, work / "synthetic.db", random.Random(7))
        write_s = time.perf_counter() - t0
        found, seconds = detect_clusters(f"sqlite:///{work / 'synthetic.db'}")
        out["synthetic"] = {"customers": args.synthetic, "write_seconds": round(write_s, 1),
                            "detect_seconds": round(seconds, 2), "goal_seconds": 60,
                            "planted_clusters": len(truth), "found_clusters": len(found), **score(found, truth)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
