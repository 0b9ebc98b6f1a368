// Runs one SQL statement in an in-memory DuckDB, tapline's stand-in for
// Athena in tests, and prints {"columns":[...],"types":[...],"rows":[...]}
// as one JSON line. Usage: node duckdb-query.mjs 'SELECT ...'
import { DuckDBInstance } from '@duckdb/node-api';

const sql = process.argv[2];
if (!sql) {
  console.error('usage: node duckdb-query.mjs SQL');
  process.exit(2);
}
try {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  const reader = await conn.runAndReadAll(sql);
  process.stdout.write(JSON.stringify({
    columns: reader.columnNames(),
    types: reader.columnTypes().map(String),
    rows: reader.getRowsJson(),
  }) + '\n');
} catch (err) {
  console.error(`duckdb: ${err.message}`);
  process.exit(1);
}
