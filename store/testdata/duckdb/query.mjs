// Runs SQL queries with DuckDB, an independent Parquet reader, for store's
// tests. Input (stdin): a JSON array of {"name", "sql"}. Output (stdout): a
// JSON object mapping each name to its result rows, as JSON-compatible
// values (big integers as strings, NaN as "NaN"). A failing query fails
// the whole run with its message on stderr.
import { DuckDBInstance } from '@duckdb/node-api';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const queries = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const instance = await DuckDBInstance.create(':memory:');
const connection = await instance.connect();
const out = { duckdb_version: null };
try {
  const v = await connection.runAndReadAll('SELECT version() AS v');
  out.duckdb_version = v.getRowObjectsJson()[0].v;
  for (const q of queries) {
    try {
      const reader = await connection.runAndReadAll(q.sql);
      out[q.name] = reader.getRowObjectsJson();
    } catch (e) {
      process.stderr.write(`query ${q.name}: ${e.message}\n${q.sql}\n`);
      process.exitCode = 1;
    }
  }
} finally {
  connection.closeSync();
  instance.closeSync();
}
process.stdout.write(JSON.stringify(out));
