"""The benchmark's database: reproducible, mixed, not trivially compressible.

Two tables, `orders` and `events`, filled in batches of pseudo-random rows:
text from a vocabulary, numbers, timestamps, jsonb documents, md5 chains and
random bytea. Each batch seeds PostgreSQL's generator (`setseed`) from its own
number and inserts in one statement on one connection, so the same target size
always gives the same rows. pg_dump's archive of it is about 2.5 times smaller
than `pg_database_size` with zstd or gzip, as with ordinary business data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg2

ORDERS_PER_BATCH = 50_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    created_at timestamptz NOT NULL,
    amount numeric(12, 2) NOT NULL,
    score double precision NOT NULL,
    status text NOT NULL,
    note text NOT NULL,
    attributes jsonb NOT NULL,
    fingerprint bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL,
    kind text NOT NULL,
    happened_at timestamptz NOT NULL,
    payload jsonb NOT NULL
);
"""

_WORDS = (
    "ARRAY['alpha','bravo','charlie','delta','echo','foxtrot','golf','hotel','india',"
    "'juliett','kilo','lima','mike','november','oscar','papa','quebec','romeo','sierra',"
    "'tango','uniform','victor','whiskey','xray','yankee','zulu','order','parcel',"
    "'customer','delivery','invoice','refund','warehouse','express','standard','priority']"
)

# One batch: ORDERS_PER_BATCH orders and half as many events, ids from the batch number.
BATCH = f"""
SELECT setseed(%(seed)s);
INSERT INTO orders
SELECT %(first_order)s + g,
    floor(random() * 1000000)::int,
    timestamptz '2020-01-01 00:00:00+00' + random() * interval '1800 days',
    round((random() * 10000)::numeric, 2),
    random(),
    (ARRAY['new','paid','shipped','delivered','returned','cancelled'])[1 + floor(random() * 6)::int],
    (SELECT string_agg(({_WORDS})[1 + floor(random() * 36)::int], ' ')
       FROM generate_series(1, 4 + (g %% 29))),
    jsonb_build_object(
        'sku', upper(substr(md5(random()::text), 1, 10)),
        'qty', 1 + floor(random() * 20)::int,
        'ip', concat_ws('.', floor(random() * 256)::int, floor(random() * 256)::int,
                        floor(random() * 256)::int, floor(random() * 256)::int),
        'tags', jsonb_build_array(md5(random()::text), md5(random()::text)),
        'gift', random() < 0.1,
        'ratio', random()),
    decode(md5(random()::text) || md5(random()::text) || md5(random()::text)
           || md5(random()::text), 'hex')
FROM generate_series(0, %(orders)s - 1) g;
INSERT INTO events
SELECT %(first_event)s + g,
    %(first_order)s + floor(random() * %(orders)s)::bigint,
    (ARRAY['created','paid','packed','shipped','delivered','refunded'])[1 + floor(random() * 6)::int],
    timestamptz '2020-01-01 00:00:00+00' + random() * interval '1800 days',
    jsonb_build_object(
        'path', '/' || ({_WORDS})[1 + floor(random() * 36)::int] || '/' || md5(random()::text),
        'agent', ({_WORDS})[1 + floor(random() * 36)::int] || '/' || floor(random() * 100)::int,
        'latency_ms', round((random() * 2000)::numeric, 3),
        'values', jsonb_build_array(floor(random() * 1e9)::bigint, floor(random() * 1e9)::bigint,
                                    floor(random() * 1e9)::bigint),
        'trace', md5(random()::text) || md5(random()::text))
FROM generate_series(0, %(orders)s / 2 - 1) g;
"""


def database_size(url: str) -> int:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        (size,) = cursor.fetchone()
    connection.close()
    return int(size)


def batches_done(url: str) -> int:
    """How many batches a database holds already (one cloned as a template keeps its rows)."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(SCHEMA)
        cursor.execute("SELECT coalesce(max(id), -1) FROM orders")
        (last,) = cursor.fetchone()
    connection.close()
    return (int(last) + 1) // ORDERS_PER_BATCH


def fill(url: str, target_bytes: int, progress: Callable[[str], None]) -> int:
    """Add batches until pg_database_size reaches `target_bytes`; returns the final size.

    Then VACUUM (FREEZE, ANALYZE) and a checkpoint, so no dump pays for hint bits
    or a background vacuum.
    """
    batch = batches_done(url)
    connection = psycopg2.connect(url)
    connection.autocommit = True
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            size = database_size(url)
            while size < target_bytes:
                cursor.execute(
                    f"BEGIN;{BATCH}COMMIT;",
                    {
                        "seed": (batch * 7919 % 10007) / 10007,
                        "first_order": batch * ORDERS_PER_BATCH,
                        "first_event": batch * ORDERS_PER_BATCH // 2,
                        "orders": ORDERS_PER_BATCH,
                    },
                )
                batch += 1
                cursor.execute("SELECT pg_database_size(current_database())")
                (size,) = cursor.fetchone()
                if batch % 20 == 0:
                    rate = size / max(time.monotonic() - started, 1e-9) / 1e6
                    progress(
                        f"  {size / 1e6:,.0f} of {target_bytes / 1e6:,.0f} MB ({rate:.0f} MB/s)"
                    )
            cursor.execute("VACUUM (FREEZE, ANALYZE)")
            cursor.execute("CHECKPOINT")
    finally:
        connection.close()
    return database_size(url)
