-- The demo shop: customers with emails and card numbers, their orders, and
-- a payroll table no agent role is granted.
CREATE TABLE customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    card_number text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL
);
COMMENT ON TABLE customers IS 'One row per customer account';

CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total       numeric(10,2) NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'refunded')),
    placed_at   timestamptz NOT NULL
);

CREATE TABLE payroll (
    employee    text PRIMARY KEY,
    salary      numeric(10,2) NOT NULL,
    iban        text NOT NULL
);

-- Deterministic, believable data: 40 customers, 300 orders.
INSERT INTO customers
SELECT i,
       first || ' ' || last,
       lower(first) || '.' || lower(last) || '@' || (ARRAY['example.com','mail.test','shop.example'])[1 + i % 3],
       (ARRAY['4111 1111 1111 1111','5500 0000 0000 0004','3400 0000 0000 009','4012 8888 8888 1881','6011 0000 0000 0004'])[1 + i % 5],
       (ARRAY['DE','FR','US','NL','SE','JP','BR'])[1 + i % 7],
       timestamptz '2025-01-06 09:00:00+00' + (i * interval '3 days 7 hours')
FROM generate_series(1, 40) AS i,
     LATERAL (SELECT (ARRAY['Ada','Grace','Linus','Margaret','Ken','Barbara','Dennis','Frances','Edsger','Radia'])[1 + i % 10] AS first,
                     (ARRAY['Lovelace','Hopper','Torvalds','Hamilton','Thompson','Liskov','Ritchie','Allen','Dijkstra','Perlman'])[1 + (i / 10 + i * 3) % 10] AS last) AS n;

INSERT INTO orders
SELECT i,
       1 + (i * 7) % 40,
       round((12 + (i * 37) % 480 + ((i * 13) % 100) / 100.0)::numeric, 2),
       (ARRAY['pending','paid','paid','shipped','shipped','shipped','refunded'])[1 + i % 7],
       timestamptz '2025-03-01 08:00:00+00' + (i * interval '17 hours 11 minutes')
FROM generate_series(1, 300) AS i;

INSERT INTO payroll VALUES
    ('Ada Lovelace',   98000.00, 'DE89 3704 0044 0532 0130 00'),
    ('Grace Hopper',  104000.00, 'GB29 NWBK 6016 1331 9268 19');
