// Runs one SQL statement in an in-memory DuckDB (one thread), tapline's
// stand-in for Athena in tests and its baseline in benchmarks, and prints
// {"columns":[...],"types":[...],"rows":[...],"elapsed_ms":N} as one JSON
// line; elapsed_ms times the statement alone, not node's start.
// Usage: node duckdb-query.mjs 'SELECT ...'
import { DuckDBInstance } from '@duckdb/node-api';

const sql = process.argv[2];
if (!sql) {
  console.error('usage: node duckdb-query.mjs SQL');
  process.exit(2);
}
try {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  const start = performance.now();
  const reader = await conn.runAndReadAll(sql);
  const elapsed = performance.now() - start;
  process.stdout.write(JSON.stringify({
    columns: reader.columnNames(),
    types: reader.columnTypes().map(String),
    rows: reader.getRowsJson(),
    elapsed_ms: elapsed,
  }) + '\n');
} catch (err) {
  console.error(`duckdb: ${err.message}`);
  process.exit(1);
}
