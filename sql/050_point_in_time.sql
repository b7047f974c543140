-- Point in time: every stored bar and feature row says when its bar closed and when it became
-- known, and every version an upsert replaces is kept with its validity interval.
--
-- Times of a row version:
--   ts           the bar's label (its start), as before;
--   closes_at    when the bar was over: hourly ts + 1 h but never after the session's close (the
--                15:30 bar closes at 16:00, the 12:30 bar of a half day at 13:00); a daily bar at
--                its session's close. From the NYSE calendar, written by the ingest with the bar;
--   known_from   when this version entered the store: market_data.ingested_at,
--                features.computed_at;
--   known_to     when a newer version replaced it: 'infinity' for the current tables, the
--                replacing transaction's clock in the revision tables.
-- A version is complete when it was fetched after its bar closed (ingested_at >= closes_at); a
-- feature row is complete when the bar version it was computed from was (bar_ingested_at >=
-- closes_at), even if the row was computed long after the close.

-- The store's clock: the server's now(), unless a session pins it (SET mfs.clock = '…': the
-- tests and the shell drills run the synthetic market on a clock of their own, and the store must
-- record the same one, or a partial bar fetched "at 10:00" would look fetched after its close).
CREATE FUNCTION mfs_now() RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce(nullif(current_setting('mfs.clock', true), '')::timestamptz, now());

ALTER TABLE market_data ALTER COLUMN ingested_at SET DEFAULT mfs_now();
ALTER TABLE features ALTER COLUMN computed_at SET DEFAULT mfs_now();

-- The close of the bar labelled `ts`, from market_sessions (SQL cannot call the calendar). Writers
-- store it (closes_at); this function fills rows written before the column existed and any row a
-- hand-written INSERT leaves without it. Outside every known session: ts + 1 h, or 16:00 New York.
CREATE FUNCTION bar_closes_at(bar_interval text, ts timestamptz) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce(
        (SELECT CASE WHEN bar_interval = '1d' THEN s.close_utc ELSE least(ts + interval '1 hour', s.close_utc) END
         FROM market_sessions s WHERE s.day_start <= ts AND ts < s.day_end),
        CASE WHEN bar_interval = '1d' THEN ny_plus(ts, interval '16 hours') ELSE ts + interval '1 hour' END);

ALTER TABLE market_data ADD COLUMN closes_at timestamptz;
ALTER TABLE features ADD COLUMN closes_at timestamptz;
-- No aggregate reads closes_at: filling it must not invalidate (and so recompute) every rollup.
ALTER TABLE market_data DISABLE TRIGGER USER;
ALTER TABLE features DISABLE TRIGGER USER;
UPDATE market_data SET closes_at = bar_closes_at(interval, ts);
UPDATE features SET closes_at = bar_closes_at(interval, ts);
ALTER TABLE market_data ENABLE TRIGGER USER;
ALTER TABLE features ENABLE TRIGGER USER;
COMMENT ON COLUMN market_data.closes_at IS 'When the bar was over (session close for daily bars and the last hourly bar)';
COMMENT ON COLUMN market_data.ingested_at IS 'When this version of the bar entered the store (its known_from)';
COMMENT ON COLUMN features.closes_at IS 'When the bar of this row was over';
COMMENT ON COLUMN features.computed_at IS 'When this version of the row entered the store (its known_from)';

-- Superseded versions. The revision-only columns come first and the table's own columns follow in
-- its order, so `(OLD).*` fills them and a column added to both tables later lines up again.
-- Same chunking as the current tables: a bar's revisions age (and are dropped) with it.
CREATE TABLE market_data_revisions (
    known_to timestamptz NOT NULL,
    reason   text NOT NULL,
    run_id   text,
    LIKE market_data
);
SELECT create_hypertable('market_data_revisions', by_range('ts', INTERVAL '30 days'), create_default_indexes => false);
CREATE INDEX market_data_revisions_version ON market_data_revisions (symbol, interval, ts, known_to);

CREATE TABLE features_revisions (
    known_to timestamptz NOT NULL,
    reason   text NOT NULL,
    run_id   text,
    LIKE features
);
SELECT create_hypertable('features_revisions', by_range('ts', INTERVAL '30 days'), create_default_indexes => false);
CREATE INDEX features_revisions_version ON features_revisions (symbol, interval, ts, known_to);

-- Writers say why and for which run (SET LOCAL mfs.revision_reason / mfs.run_id, and
-- mfs.readjusted: the symbols whose whole history the transaction rewrites after Yahoo
-- re-adjusted it); what the row itself tells wins: a partial bar completed, a feature
-- definition changed, a bar revised.
-- `SET LOCAL mfs.keep_revisions = 'off'` skips the copy (the benchmark's side-by-side only).
CREATE FUNCTION keep_market_data_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    why text := nullif(current_setting('mfs.revision_reason', true), '');
BEGIN
    IF current_setting('mfs.keep_revisions', true) = 'off' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW IS NOT DISTINCT FROM OLD THEN
            RETURN NEW;
        END IF;
        IF OLD.symbol = ANY(string_to_array(nullif(current_setting('mfs.readjusted', true), ''), ',')) THEN
            why := 'readjustment';
        END IF;
        IF OLD.ingested_at < OLD.closes_at THEN
            why := CASE WHEN NEW.ingested_at < NEW.closes_at THEN 'partial_bar_updated' ELSE 'partial_bar_completed' END;
        END IF;
    END IF;
    INSERT INTO market_data_revisions
    SELECT mfs_now(), coalesce(why, CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE 'correction' END),
           nullif(current_setting('mfs.run_id', true), ''), (OLD).*;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE FUNCTION keep_features_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    why text := nullif(current_setting('mfs.revision_reason', true), '');
BEGIN
    IF current_setting('mfs.keep_revisions', true) = 'off' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW IS NOT DISTINCT FROM OLD THEN
            RETURN NEW;
        END IF;
        IF NEW.feature_version IS DISTINCT FROM OLD.feature_version THEN
            why := 'definition_change';
        ELSIF NEW.bar_ingested_at IS DISTINCT FROM OLD.bar_ingested_at THEN
            why := coalesce(why, 'bar_revised');
        END IF;
    END IF;
    INSERT INTO features_revisions
    SELECT mfs_now(), coalesce(why, CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE 'recompute' END),
           nullif(current_setting('mfs.run_id', true), ''), (OLD).*;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER market_data_keep_revision BEFORE UPDATE OR DELETE ON market_data
    FOR EACH ROW EXECUTE FUNCTION keep_market_data_revision();
CREATE TRIGGER features_keep_revision BEFORE UPDATE OR DELETE ON features
    FOR EACH ROW EXECUTE FUNCTION keep_features_revision();

-- Every version of every row, current and superseded, with its validity interval (the revision
-- tables' own first columns, known_to, reason and run_id, line up with the current branch's).
CREATE VIEW bar_versions AS
SELECT m.ingested_at AS known_from, m.ingested_at >= m.closes_at AS complete,
       'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, m.*
FROM market_data m
UNION ALL
SELECT r.ingested_at, r.ingested_at >= r.closes_at, r.*
FROM market_data_revisions r;
COMMENT ON VIEW bar_versions IS 'Every version of every bar: known_from, complete, known_to, reason, run_id';

CREATE VIEW feature_versions AS
SELECT f.computed_at AS known_from, f.bar_ingested_at >= f.closes_at AS complete,
       'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, f.*
FROM features f
UNION ALL
SELECT r.computed_at, r.bar_ingested_at >= r.closes_at, r.*
FROM features_revisions r;
COMMENT ON VIEW feature_versions IS 'Every version of every feature row: known_from, complete, known_to, reason, run_id';
