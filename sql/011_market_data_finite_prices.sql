-- PostgreSQL sorts NaN above every number, so 'NaN' > 0 is true and the positivity checks of
-- 001 let NaN and Infinity through. Ingest validation rejects them first; this makes the table
-- itself refuse them too (x < 'Infinity' is false for both NaN and Infinity).
ALTER TABLE market_data ADD CONSTRAINT market_data_prices_finite CHECK (
    open < 'Infinity'::float8 AND high < 'Infinity'::float8 AND low < 'Infinity'::float8
    AND close < 'Infinity'::float8 AND (adj_close IS NULL OR adj_close < 'Infinity'::float8));
