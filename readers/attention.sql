-- DuckDB: attention rows of an attnaudit run with the weights as
-- probabilities, q_len × k_len row-major, whatever the precision.
--
--   .read readers/attention.sql
--   SELECT * FROM attention('runs/ko-en-small-epoch0027-d2df05f0');          -- packed (the default)
--   SELECT * FROM attention_compact('runs/…');                               -- compact runs
--   SELECT * FROM read_parquet('runs/…/attention-*.parquet');                -- fixed, float32, float16
--
-- The packed precision (the default) stores each weight w as 1 + w in the
-- column weights_packed, row by row, without what can be restored exactly
-- (docs/storage.md): a causal matrix's zeros after the diagonal (kind
-- decoder_self, q_len = k_len: row t keeps columns 0…t) and, in a matrix
-- whose rows sum to exactly 1, each row's last kept weight, which is 1
-- minus the row's others. The list's length says which:
--   q·k all values; q·(k−1) without each row's last (not decoder_self
--   with q = k); q(q+1)/2 the triangle; q(q−1)/2 the triangle without its
--   diagonal (decoder_self with q = k).
-- attention() gives back weights, a FLOAT[] of q_len·k_len probabilities,
-- in the column's place; attnaudit_weights(kind, q_len, k_len,
-- weights_packed) is the same for one row. The compact precision (the
-- default before packed) stores 1 + w for every weight in weights_plus_one:
-- attention_compact() subtracts 1. Runs stored as fixed, float32 or
-- float16 have a weights column of probabilities already.

-- where row t's stored values start in the list (0-based)
CREATE OR REPLACE MACRO attnaudit_row_start(t, k, tri, dropped) AS
    CASE WHEN tri THEN t * (t + 1) // 2 - CASE WHEN dropped THEN t ELSE 0 END
         ELSE t * (k - CASE WHEN dropped THEN 1 ELSE 0 END) END;

-- row t's stored values (less 1): those it keeps, less the left-out last
CREATE OR REPLACE MACRO attnaudit_stored(p, t, k, tri, dropped) AS
    list_transform(p[attnaudit_row_start(t, k, tri, dropped) + 1 :
                     attnaudit_row_start(t, k, tri, dropped) + CASE WHEN tri THEN t + 1 ELSE k END - CASE WHEN dropped THEN 1 ELSE 0 END],
                   x -> x - 1::FLOAT);

-- row t of a packed list p: its stored weights, then the left-out one (1
-- minus the others: multiples of 2^-30 that sum exactly in DOUBLE, so it
-- comes back exactly), then a triangle's zeros after the diagonal
CREATE OR REPLACE MACRO attnaudit_row(p, t, k, tri, dropped) AS
    list_concat(
        attnaudit_stored(p, t, k, tri, dropped),
        CASE WHEN dropped THEN [(1 - coalesce(list_sum(list_transform(attnaudit_stored(p, t, k, tri, dropped), x -> x::DOUBLE)), 0))::FLOAT]
             ELSE []::FLOAT[] END,
        list_resize([]::FLOAT[], CASE WHEN tri THEN k - t - 1 ELSE 0 END, 0::FLOAT));

-- which layout a list of n values has; error() for a length that fits none
CREATE OR REPLACE MACRO attnaudit_layout(kind, q, k, n) AS
    CASE WHEN n = q * k THEN 'full'
         WHEN kind = 'decoder_self' AND q = k AND n = q * (q + 1) // 2 THEN 'triangle'
         WHEN kind = 'decoder_self' AND q = k AND n = q * (q - 1) // 2 THEN 'triangle_dropped'
         WHEN NOT (kind = 'decoder_self' AND q = k) AND n = q * (k - 1) THEN 'dropped'
         ELSE error('weights_packed holds ' || n || ' values, which fits no layout of a ' || q || ' x ' || k || ' ' || kind || ' matrix') END;

CREATE OR REPLACE MACRO attnaudit_weights_as(p, q, k, layout) AS
    flatten(list_transform(range(q), t -> attnaudit_row(p, t, k,
        layout IN ('triangle', 'triangle_dropped'), layout IN ('dropped', 'triangle_dropped'))));

-- the q_len × k_len weights of one row of a packed run
CREATE OR REPLACE MACRO attnaudit_weights(kind, q, k, p) AS
    attnaudit_weights_as(p, q, k, attnaudit_layout(kind, q, k, len(p)));

CREATE OR REPLACE MACRO attention(run) AS TABLE
    SELECT * EXCLUDE (weights_packed),
           attnaudit_weights(kind, q_len, k_len, weights_packed) AS weights
    FROM read_parquet(run || '/attention-*.parquet');

CREATE OR REPLACE MACRO attention_compact(run) AS TABLE
    SELECT * EXCLUDE (weights_plus_one),
           list_transform(weights_plus_one, x -> x - 1::FLOAT) AS weights
    FROM read_parquet(run || '/attention-*.parquet');
