/**
 * How a row's value should travel to D1 inside a json_each parameter: nested as JSON (`w.value -> 2`)
 * or as a JSON string holding its text (`w.value ->> 2`). Runs the consumer's records INSERT shape
 * against node:sqlite (the same SQLite JSON code D1 runs) on rows of the bench's size, both shapes
 * taking turns, and prints rows/s for each. `node scripts/bench/sqlite-json-shape.ts [rounds]`
 */
import { DatabaseSync } from "node:sqlite";

const ROWS_PER_STATEMENT = 500;
const STATEMENTS = 40;

const nested = `INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at, writer)
SELECT w.value ->> 0, w.value ->> 1, nullif(w.value -> 2, 'null'), w.value ->> 3, w.value ->> 4, w.value ->> 5, w.value -> 6, w.value ->> 7, w.value ->> 8, w.value ->> 9, ?2, ?3
FROM json_each(?1) AS w`;
const shapes = { nested, string: nested.replace("nullif(w.value -> 2, 'null')", "w.value ->> 2") };

/** A value like the bench's: 23 fields, strings, numbers, a list, an object and a 64-float vector (~1.3 KB of JSON). */
function value(i: number): Record<string, unknown> {
	const v: Record<string, unknown> = {
		name: `user ${i}`,
		email: `u${i}@example.com`,
		age: i % 90,
		score: Math.random(),
		active: true,
		tags: ["a", "b", "c"],
		meta: { plan: "pro", n: i },
		vec: Array.from({ length: 64 }, () => Math.random()),
	};
	for (let f = 0; f < 15; f++) v[`f${f}`] = f % 2 ? `text value ${f}` : f * 1.5;
	return v;
}

function run(shape: keyof typeof shapes): number {
	const db = new DatabaseSync(":memory:");
	db.exec(
		"CREATE TABLE records (dataset text NOT NULL, key text NOT NULL, value text, base_time integer, base_id text, base_deleted integer NOT NULL DEFAULT 0, field_clocks text NOT NULL DEFAULT '{}', event_time integer NOT NULL, event_id text NOT NULL, rev integer NOT NULL, updated_at integer NOT NULL, writer integer, PRIMARY KEY (dataset, key))",
	);
	const stmt = db.prepare(shapes[shape]);
	let ns = 0n;
	for (let s = 0, n = 0; s < STATEMENTS; s++) {
		const rows: string[] = [];
		for (let i = 0; i < ROWS_PER_STATEMENT; i++, n++) {
			const text = JSON.stringify(value(n));
			rows.push(`["ds","k${n}",${shape === "string" ? JSON.stringify(text) : text},1,"id",0,{},1,"id",1]`);
		}
		const param = `[${rows.join(",")}]`;
		const t0 = process.hrtime.bigint();
		stmt.run(param, 1, 2);
		ns += process.hrtime.bigint() - t0;
	}
	// Both shapes store the same text.
	const stored = db.prepare("SELECT value FROM records WHERE key = 'k7'").get() as { value: string };
	JSON.parse(stored.value);
	db.close();
	return (STATEMENTS * ROWS_PER_STATEMENT) / (Number(ns) / 1e9);
}

const rounds = Number(process.argv[2] ?? 3);
const rates: Record<string, number[]> = { nested: [], string: [] };
for (let r = 0; r < rounds; r++) for (const shape of ["nested", "string"] as const) rates[shape]?.push(run(shape));
for (const [shape, rs] of Object.entries(rates)) console.log(`${shape}: ${rs.map((x) => Math.round(x)).join(", ")} rows/s`);
const ratio = (rates.string ?? []).map((s, i) => s / (rates.nested?.[i] ?? s));
console.log(`string / nested: ${ratio.map((x) => x.toFixed(2)).join(", ")}`);
