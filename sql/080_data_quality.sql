-- Data quality with market semantics: corporate actions and anomalies are facts with times.
--
-- corporate_actions: the splits and dividends Yahoo serves with its charts, one version per
-- (symbol, kind, ex_date) and time it was known. A changed value (Yahoo revising a dividend
-- amount) closes the current version (known_to) and adds a new one, so "which actions were known
-- at T" is `known_from <= T AND T < known_to`, like every other fact of the store.
CREATE TABLE corporate_actions (
    symbol     text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('split', 'dividend')),
    ex_date    date NOT NULL,             -- the New York session on which it takes effect
    value      double precision NOT NULL CHECK (value > 0 AND value < 'infinity'),
    source     text NOT NULL,
    known_from timestamptz NOT NULL DEFAULT mfs_now(),
    known_to   timestamptz NOT NULL DEFAULT 'infinity',
    run_id     text,
    PRIMARY KEY (symbol, kind, ex_date, known_from),
    CHECK (known_from < known_to)
);
CREATE UNIQUE INDEX corporate_actions_current ON corporate_actions (symbol, kind, ex_date)
    WHERE known_to = 'infinity';
COMMENT ON TABLE corporate_actions IS
    'Splits (value = shares after / before, 4 for a 4-for-1) and dividends (value = amount per share, as served), each version with known_from/known_to';

-- anomalies: what the quality checks found. A bar is either stored with an anomaly beside it
-- (doubt recorded) or held back (held: positive evidence of a defect; the bar as served is in
-- `bar`, it is not in market_data, and every run re-examines it until the evidence clears).
-- A finding is unique per bar and kind, so re-running a window records nothing twice (a held bar
-- whose defect comes back after it was cleared reopens its row).
CREATE TABLE anomalies (
    id          bigserial PRIMARY KEY,
    symbol      text NOT NULL,
    interval    text NOT NULL,
    ts          timestamptz NOT NULL,     -- the bar's label
    kind        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'high')),
    held        boolean NOT NULL DEFAULT false,
    detail      text NOT NULL,
    bar         jsonb,                    -- a held bar's values as served
    run_id      text,
    detected_at timestamptz NOT NULL DEFAULT mfs_now(),
    resolved_at timestamptz,
    resolution  text,
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
CREATE UNIQUE INDEX anomalies_bar_kind ON anomalies (symbol, interval, ts, kind);
CREATE INDEX anomalies_held ON anomalies (symbol, interval, ts) WHERE held AND resolved_at IS NULL;
CREATE INDEX anomalies_run ON anomalies (run_id);
COMMENT ON TABLE anomalies IS
    'Quality findings per bar: stored with doubt (held = false) or held back from market_data (held = true) until resolved';

-- The serving view: every finding with its state in words, newest first.
CREATE VIEW data_quality AS
SELECT a.symbol, a.interval, a.ts, a.kind, a.severity, a.held, a.detail,
       CASE WHEN a.resolved_at IS NOT NULL THEN 'resolved'
            WHEN a.held THEN 'held back'
            ELSE 'stored' END AS state,
       a.detected_at, a.resolved_at, a.resolution, a.run_id
FROM anomalies a;
COMMENT ON VIEW data_quality IS 'Anomalies with their state: stored (doubt recorded), held back, resolved';

-- Readers see the actions and the quality view; the anomalies table (a held bar's raw values)
-- only through the view.
GRANT SELECT ON corporate_actions, data_quality TO mfs_reader;
REVOKE SELECT ON anomalies FROM mfs_reader;

-- A re-adjustment names the action that caused it: writers pass, per symbol, the reason in
-- mfs.readjusted_for (a JSON object), which the revision keeps as 'readjustment: <reason>'.
CREATE OR REPLACE FUNCTION keep_market_data_revision() RETURNS trigger
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
            why := coalesce('readjustment: '
                            || (nullif(current_setting('mfs.readjusted_for', true), '')::jsonb ->> OLD.symbol),
                            'readjustment');
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
