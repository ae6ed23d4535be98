-- Every accepted UGC event (the loader writes, analytics reads). Written at least once:
-- ReplacingMergeTree keyed by event id folds repeats (a redelivery after a loader
-- crash, a client retry with the same Idempotency-Key); exact counts read with FINAL
-- or uniqExact(event_id).
CREATE TABLE IF NOT EXISTS ugc_events (
    event_id     UUID,
    event_type   String,
    user_id      UUID,
    film_id      UUID,
    review_id    UUID,
    occurred_at  DateTime('UTC'),
    position_s   UInt32,
    duration_s   UInt32,
    score        Int8,
    value        Int8,
    text         String,
    loaded_at    DateTime('UTC'),
    -- Milliseconds from acceptance at the intake to the loader's insert.
    load_lag_ms  UInt32
) ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (event_type, event_id);
