-- UGC read models: what users' own reads and film pages need, kept by the ugc
-- read-model consumer from Kafka `ugc.events`. Every write is idempotent by
-- construction: rows keep the acceptance time of the event that wrote them and only a
-- newer (or the same) event overwrites them; reviews are inserted once by id; like
-- counts are recounted. So redelivered events change nothing.
CREATE SCHEMA IF NOT EXISTS ugc;

-- Latest playback position per user and film (resume playback).
CREATE TABLE ugc.progress (
    user_id      uuid NOT NULL,
    film_id      uuid NOT NULL,
    position_s   integer NOT NULL,
    duration_s   integer NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, film_id)
);

CREATE TABLE ugc.bookmarks (
    user_id     uuid NOT NULL,
    film_id     uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- false: removed (kept so a late "set" older than the removal stays removed).
    active      boolean NOT NULL,
    PRIMARY KEY (user_id, film_id)
);
CREATE INDEX bookmarks_user_idx ON ugc.bookmarks (user_id, occurred_at DESC) WHERE active;

CREATE TABLE ugc.ratings (
    user_id     uuid NOT NULL,
    film_id     uuid NOT NULL,
    score       smallint,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, film_id),
    CONSTRAINT rating_score_range CHECK (score BETWEEN 0 AND 10)
);
CREATE INDEX ratings_film_idx ON ugc.ratings (film_id) WHERE score IS NOT NULL;

CREATE TABLE ugc.reviews (
    id          uuid PRIMARY KEY,
    film_id     uuid NOT NULL,
    user_id     uuid NOT NULL,
    text        text NOT NULL,
    created     timestamptz NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    likes       integer NOT NULL DEFAULT 0,
    dislikes    integer NOT NULL DEFAULT 0
);
CREATE INDEX reviews_film_created_idx ON ugc.reviews (film_id, created DESC) WHERE NOT deleted;
CREATE INDEX reviews_film_likes_idx ON ugc.reviews (film_id, likes DESC) WHERE NOT deleted;

CREATE TABLE ugc.review_likes (
    review_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    value       smallint,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (review_id, user_id),
    CONSTRAINT review_like_value CHECK (value IN (-1, 1))
);
