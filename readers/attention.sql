-- DuckDB: attention rows of an attnaudit run with the weights as
-- probabilities, whatever the precision it was stored at.
--
--   .read readers/attention.sql
--   SELECT * FROM attention('runs/ko-en-small-epoch0027-d2df05f0');
--
-- The compact precision (the default) stores each weight w as 1 + w in the
-- column weights_plus_one (float32; exact for w on the rounding grids,
-- within 6e-8 for a matrix stored unrounded: docs/storage.md);
-- attention() gives back weights = weights_plus_one - 1, a FLOAT[] in the
-- column's place. Runs stored as fixed, float32 or float16 (and runs
-- written before the compact precision) have a weights column of
-- probabilities already: read_parquet('RUN/attention-*.parquet').
CREATE OR REPLACE MACRO attention(run) AS TABLE
    SELECT * EXCLUDE (weights_plus_one),
           list_transform(weights_plus_one, x -> x - 1::FLOAT) AS weights
    FROM read_parquet(run || '/attention-*.parquet');

