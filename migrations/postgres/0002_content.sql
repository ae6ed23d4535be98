-- Content: films, genres, persons and their links. `modified` is kept by the database;
-- every change notifies channel `content_changes` with {"table", "id", "op"} so the ETL
-- can update the search index at once, and a change to a link also touches its film's
-- `modified`, so a catch-up by `modified` finds everything the notifications missed.
CREATE SCHEMA IF NOT EXISTS content;

CREATE OR REPLACE FUNCTION content.touch_modified() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.modified := now();
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION content.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_id uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
BEGIN
    PERFORM pg_notify('content_changes',
        json_build_object('table', TG_TABLE_NAME, 'id', row_id, 'op', TG_OP)::text);
    RETURN NULL;
END $$;

-- For link tables: the film's document changed; say so and move its `modified`.
CREATE OR REPLACE FUNCTION content.notify_link_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    affected uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.film_id ELSE NEW.film_id END;
BEGIN
    UPDATE content.film SET modified = now() WHERE id = affected;
    RETURN NULL;
END $$;

CREATE TABLE content.genre (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created     timestamptz NOT NULL DEFAULT now(),
    modified    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT genre_name_key UNIQUE (name),
    CONSTRAINT genre_name_not_blank CHECK (btrim(name) <> '')
);

CREATE TABLE content.person (
    id        uuid PRIMARY KEY,
    full_name text NOT NULL,
    created   timestamptz NOT NULL DEFAULT now(),
    modified  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT person_full_name_not_blank CHECK (btrim(full_name) <> '')
);

CREATE TABLE content.film (
    id            uuid PRIMARY KEY,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    creation_date date,
    rating        numeric(3, 1),
    type          text NOT NULL DEFAULT 'movie',
    access        text NOT NULL DEFAULT 'free',
    created       timestamptz NOT NULL DEFAULT now(),
    modified      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT film_title_not_blank CHECK (btrim(title) <> ''),
    CONSTRAINT film_rating_range CHECK (rating BETWEEN 0 AND 10),
    CONSTRAINT film_type_known CHECK (type IN ('movie', 'tv_show')),
    CONSTRAINT film_access_known CHECK (access IN ('free', 'subscription'))
);
-- Lists sorted by rating or date, and the ETL's catch-up by modified.
CREATE INDEX film_rating_idx ON content.film (rating DESC NULLS LAST, id);
CREATE INDEX film_creation_date_idx ON content.film (creation_date DESC NULLS LAST, id);
CREATE INDEX film_modified_idx ON content.film (modified, id);
CREATE INDEX genre_modified_idx ON content.genre (modified, id);
CREATE INDEX person_modified_idx ON content.person (modified, id);

CREATE TABLE content.film_genre (
    id       uuid PRIMARY KEY,
    film_id  uuid NOT NULL REFERENCES content.film (id) ON DELETE CASCADE,
    genre_id uuid NOT NULL REFERENCES content.genre (id) ON DELETE CASCADE,
    created  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT film_genre_key UNIQUE (film_id, genre_id)
);
CREATE INDEX film_genre_genre_idx ON content.film_genre (genre_id);

CREATE TABLE content.film_person (
    id        uuid PRIMARY KEY,
    film_id   uuid NOT NULL REFERENCES content.film (id) ON DELETE CASCADE,
    person_id uuid NOT NULL REFERENCES content.person (id) ON DELETE CASCADE,
    role      text NOT NULL,
    created   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT film_person_key UNIQUE (film_id, person_id, role),
    CONSTRAINT film_person_role_known CHECK (role IN ('actor', 'director', 'writer'))
);
CREATE INDEX film_person_person_idx ON content.film_person (person_id);

CREATE TRIGGER genre_touch BEFORE UPDATE ON content.genre FOR EACH ROW EXECUTE FUNCTION content.touch_modified();
CREATE TRIGGER person_touch BEFORE UPDATE ON content.person FOR EACH ROW EXECUTE FUNCTION content.touch_modified();
CREATE TRIGGER film_touch BEFORE UPDATE ON content.film FOR EACH ROW EXECUTE FUNCTION content.touch_modified();

CREATE TRIGGER genre_notify AFTER INSERT OR UPDATE OR DELETE ON content.genre
    FOR EACH ROW EXECUTE FUNCTION content.notify_change();
CREATE TRIGGER person_notify AFTER INSERT OR UPDATE OR DELETE ON content.person
    FOR EACH ROW EXECUTE FUNCTION content.notify_change();
CREATE TRIGGER film_notify AFTER INSERT OR UPDATE OR DELETE ON content.film
    FOR EACH ROW EXECUTE FUNCTION content.notify_change();
CREATE TRIGGER film_genre_notify AFTER INSERT OR UPDATE OR DELETE ON content.film_genre
    FOR EACH ROW EXECUTE FUNCTION content.notify_link_change();
CREATE TRIGGER film_person_notify AFTER INSERT OR UPDATE OR DELETE ON content.film_person
    FOR EACH ROW EXECUTE FUNCTION content.notify_link_change();
