-- Serving views for SQL users (both editions): newest features, freshness against the NYSE
-- calendar, missing sessions. Sessions come from market_sessions (filled from mfs.calendar).

-- Every (symbol, interval) that has bars. A loose index scan over the primary key (symbol,
-- interval, ts): one index probe per series and chunk instead of reading every bar
-- (PostgreSQL 15 has no skip scan of its own).
CREATE VIEW stored_series AS
WITH RECURSIVE series AS (
    (SELECT symbol, interval FROM market_data ORDER BY symbol, interval LIMIT 1)
    UNION ALL
    SELECT nxt.symbol, nxt.interval
    FROM series s
    CROSS JOIN LATERAL (SELECT m.symbol, m.interval FROM market_data m
                        WHERE (m.symbol, m.interval) > (s.symbol, s.interval)
                        ORDER BY m.symbol, m.interval LIMIT 1) nxt
)
SELECT symbol, interval FROM series;
COMMENT ON VIEW stored_series IS 'Every (symbol, interval) with stored bars';

-- The newest feature row of every series (newest bar that has features).
CREATE VIEW latest_features AS
SELECT f.*
FROM stored_series s
CROSS JOIN LATERAL (SELECT * FROM features f
                    WHERE f.symbol = s.symbol AND f.interval = s.interval
                    ORDER BY f.ts DESC LIMIT 1) f;
COMMENT ON VIEW latest_features IS 'Newest feature row per symbol and interval';

-- The newest bar the calendar says should exist now, per interval: the last session that has
-- opened; for 1h its latest bar start not after now (Yahoo labels bars 09:30, 10:30 …, serving
-- the current one partially — mfs.calendar.latest_expected_bar), for 1d its day label.
CREATE VIEW expected_bars AS
WITH last_session AS (
    SELECT * FROM market_sessions WHERE open_utc <= now() ORDER BY open_utc DESC LIMIT 1
)
SELECT '1h'::text AS interval,
       open_utc + least(floor(extract(epoch FROM now() - open_utc) / 3600),
                        ceil(extract(epoch FROM close_utc - open_utc) / 3600) - 1) * interval '1 hour' AS expected_bar
FROM last_session
UNION ALL
SELECT '1d', day_start FROM last_session;
COMMENT ON VIEW expected_bars IS 'Newest bar per interval the NYSE calendar says should exist now';

CREATE VIEW data_freshness AS
SELECT s.symbol, s.interval, n.newest_bar, e.expected_bar,
       greatest(e.expected_bar - n.newest_bar, interval '0') AS lag,
       n.newest_bar >= e.expected_bar AS up_to_date
FROM stored_series s
CROSS JOIN LATERAL (SELECT max(m.ts) AS newest_bar FROM market_data m
                    WHERE m.symbol = s.symbol AND m.interval = s.interval) n
LEFT JOIN expected_bars e ON e.interval = s.interval;
COMMENT ON VIEW data_freshness IS 'Per symbol and interval: newest stored bar, newest expected bar, lag';

-- Sessions between a series' first bar and the newest expected bar that have no bar at all.
CREATE VIEW missing_sessions AS
SELECT s.symbol, s.interval, ms.session_date, ms.day_start, ms.half_day
FROM stored_series s
CROSS JOIN LATERAL (SELECT min(m.ts) AS first_bar FROM market_data m
                    WHERE m.symbol = s.symbol AND m.interval = s.interval) f
JOIN market_sessions ms ON ms.day_end > f.first_bar AND ms.open_utc <= now()
WHERE NOT EXISTS (SELECT 1 FROM market_data m
                  WHERE m.symbol = s.symbol AND m.interval = s.interval
                    AND m.ts >= ms.day_start AND m.ts < ms.day_end);
COMMENT ON VIEW missing_sessions IS 'NYSE sessions without any bar, per symbol and interval, since the series began';
