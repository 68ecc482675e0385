// The pieces of `hotpath load` that need no server: cell typing, row encoding, line reading, chunking, checkpoints.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Spec } from "@hotpath/client";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, describe, expect, it } from "vitest";
import { Checkpoint, CheckpointLock, type LoadIdentity } from "../../../cli/load/checkpoint.ts";
import { type Chunk, chunked } from "../../../cli/load/chunks.ts";
import { coerceText, eventTimeValue, jsonReady } from "../../../cli/load/coerce.ts";
import { csvSource } from "../../../cli/load/csv.ts";
import { ndjsonLines, ndjsonSource } from "../../../cli/load/ndjson.ts";
import { parquetSource, RANGE_ROWS } from "../../../cli/load/parquet.ts";
import { RowEncoder } from "../../../cli/load/rows.ts";
import type { SourceItem } from "../../../cli/load/source.ts";
import { UsageError } from "../../../cli/output.ts";

const dir = mkdtempSync(path.join(tmpdir(), "hotpath-load-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec: Spec = {
	name: "items",
	key: "item_id",
	ttl_seconds: 60,
	history_days: 7,
	fields: {
		n: { type: "int" },
		price: { type: "float" },
		ok: { type: "bool" },
		meta: { type: "json" },
		tags: { type: "string[]" },
		emb: { type: "vector", dim: 2 },
		name: { type: "string" },
	},
};

async function collect<T>(it: AsyncIterable<T[]>): Promise<T[]> {
	const out: T[] = [];
	for await (const batch of it) out.push(...batch);
	return out;
}

async function allChunks(it: AsyncIterable<Chunk>): Promise<Chunk[]> {
	const out: Chunk[] = [];
	for await (const c of it) out.push(c);
	return out;
}

describe("CSV cells typed by field", () => {
	it("types each kind, empty as null, and says why a cell is wrong", () => {
		expect(coerceText({ type: "int" }, " 42 ")).toEqual({ value: 42 });
		expect(coerceText({ type: "int" }, "4.2")).toEqual({ error: '"4.2" is not an integer' });
		expect(coerceText({ type: "int" }, "9007199254740993")).toHaveProperty("error");
		expect(coerceText({ type: "float" }, "1e3")).toEqual({ value: 1000 });
		expect(coerceText({ type: "float" }, "NaN")).toHaveProperty("error");
		for (const cell of ["0.25", "-3", ".5", "5.", "+1E-3", " 7 "]) expect(coerceText({ type: "float" }, cell)).toEqual({ value: Number(cell) });
		// Number() reads these as 26, 5 and 7; in a CSV they are text, not a float.
		for (const cell of ["0x1A", "0b101", "0o7", "1_000", "Infinity", "1e400"])
			expect(coerceText({ type: "float" }, cell)).toEqual({ error: `"${cell}" is not a finite number` });
		expect(coerceText({ type: "bool" }, "TRUE")).toEqual({ value: true });
		expect(coerceText({ type: "bool" }, "0")).toEqual({ value: false });
		expect(coerceText({ type: "bool" }, "maybe")).toHaveProperty("error");
		expect(coerceText({ type: "json" }, '{"a":[1]}')).toEqual({ value: { a: [1] } });
		expect(coerceText({ type: "json" }, "{oops")).toHaveProperty("error");
		expect(coerceText({ type: "string[]" }, '["a","b"]')).toEqual({ value: ["a", "b"] });
		expect(coerceText({ type: "vector", dim: 2 }, "[0.1,0.2]")).toEqual({ value: [0.1, 0.2] });
		expect(coerceText({ type: "float[]" }, "0.1,0.2")).toHaveProperty("error");
		expect(coerceText({ type: "float[]" }, '{"a":1}')).toEqual({ error: '"{"a":1}" is not a JSON array' });
		expect(coerceText({ type: "string" }, " keep spaces ")).toEqual({ value: " keep spaces " });
		for (const t of ["string", "int", "float", "bool", "json", "string[]"] as const) expect(coerceText({ type: t }, "")).toEqual({ value: null });
	});

	it("makes Parquet values JSON-ready and reads event times", () => {
		expect(jsonReady(12n)).toBe(12);
		expect(jsonReady(2n ** 60n)).toBe("1152921504606846976");
		expect(jsonReady(new Date(0))).toBe("1970-01-01T00:00:00.000Z");
		expect(jsonReady(new Float32Array([0.5, 1]))).toEqual([0.5, 1]);
		expect(jsonReady({ a: [1n, null] })).toEqual({ a: [1, null] });
		expect(eventTimeValue("1700000000000")).toBe(1_700_000_000_000);
		expect(eventTimeValue("2026-01-02T03:04:05Z")).toBe("2026-01-02T03:04:05Z");
		expect(eventTimeValue("")).toBeUndefined();
	});
});

describe("rows encoded for the import route", () => {
	const enc = (o: Partial<ConstructorParameters<typeof RowEncoder>[0]> = {}) =>
		new RowEncoder({ spec, typing: "json", idPrefix: "hp:f:", defaultEventTime: 1000, ...o });
	const parsed = (e: ReturnType<RowEncoder["encode"]>) => ("text" in e ? JSON.parse(e.text) : e);

	it("rejects a number JSON cannot carry instead of sending it as null: Parquet NaN, Infinity and invalid dates by column, 1e400 in a parsed line or json cell by path", () => {
		const pq = enc({ typing: "parquet" });
		const row = (r: Record<string, unknown>) => pq.encode({ pos: 4, row: { item_id: "a", ...r }, end: 0 });
		expect(row({ price: Number.NaN })).toEqual({ error: "price: NaN is not a finite number" });
		expect(row({ price: Number.NEGATIVE_INFINITY })).toEqual({ error: "price: -Infinity is not a finite number" });
		expect(row({ emb: new Float64Array([1, Number.POSITIVE_INFINITY]) })).toEqual({ error: "emb: Infinity at [1] is not a finite number" });
		expect(row({ meta: { a: [1, Number.NaN] } })).toEqual({ error: "meta: NaN at a[1] is not a finite number" });
		expect(row({ name: new Date(Number.NaN) })).toEqual({ error: "name: an invalid date" });
		expect(parsed(row({ price: 0.5, meta: { a: 1 } }))).toMatchObject({ item_id: "a", price: 0.5, meta: { a: 1 } });
		// A line with an _id is parsed and encoded again (no fast path): its 1e400 is Infinity there.
		expect(enc().encode({ pos: 2, text: '{"_id":"x","item_id":"a","meta":{"b":1e400}}', end: 0 })).toEqual({
			error: "meta.b: expected a finite number, not Infinity (a number too large for JSON, such as 1e400, reads as Infinity)",
		});
		expect(enc().encode({ pos: 2, text: '{"_id":"x","item_id":"a","_event_time":-1e400}', end: 0 })).toHaveProperty("error");
		expect(enc({ typing: "text" }).encode({ pos: 3, row: { item_id: "a", meta: '{"b":[1e999]}' }, end: 0 })).toEqual({
			error: "meta.b[0]: expected a finite number, not Infinity (a number too large for JSON, such as 1e400, reads as Infinity)",
		});
	});

	it("leaves a derived field's column out of CSV and Parquet rows, where typing it could only refuse a row the server would take", () => {
		const derivedSpec = { ...spec, fields: { ...spec.fields, ctr: { type: "float" as const, derive: "price * 2" } } };
		for (const typing of ["text", "parquet"] as const) {
			const e = enc({ spec: derivedSpec, typing }).encode({ pos: 1, row: { item_id: "a", price: "0.5", ctr: "n/a" }, end: 0 });
			expect(parsed(e), typing).not.toHaveProperty("ctr");
			expect(parsed(e), typing).toMatchObject({ item_id: "a", price: 0.5 });
		}
	});

	it("prepends _id and _event_time to a plain JSON line without re-encoding it, as the parse path would", () => {
		const text = '{"item_id":"a","price":1.5,"tags":["x"]}';
		const fast = enc().encode({ pos: 7, text, end: 0 });
		expect("text" in fast && fast.text).toBe(`{"_id":"hp:f:000000000007","_event_time":1000,"item_id":"a","price":1.5,"tags":["x"]}`);
		// The same row given as an object goes through the parse path: the same content.
		expect(parsed(fast)).toEqual(parsed(enc().encode({ pos: 7, row: JSON.parse(text), end: 0 })));
	});

	it("keeps a row's own _id and _event_time, and takes --event-time-column out of the value", () => {
		expect(parsed(enc().encode({ pos: 1, text: '{"item_id":"a","_id":"mine","_event_time":"2026-01-01T00:00:00Z"}', end: 0 }))).toEqual({
			item_id: "a",
			_id: "mine",
			_event_time: "2026-01-01T00:00:00Z",
		});
		expect(parsed(enc({ eventTimeColumn: "ts" }).encode({ pos: 2, text: '{"item_id":"a","ts":5,"n":1}', end: 0 }))).toEqual({
			item_id: "a",
			n: 1,
			_event_time: 5,
			_id: "hp:f:000000000002",
		});
		expect(enc({ eventTimeColumn: "ts" }).encode({ pos: 3, text: '{"item_id":"a"}', end: 0 })).toEqual({ error: "no event time in column ts" });
	});

	it("rejects what is not a JSON object, and types CSV rows by the spec", () => {
		expect(enc().encode({ pos: 1, text: "[1,2]", end: 0 })).toEqual({ error: "a row must be a JSON object" });
		// A line that looks like an object is not parsed here: the server rejects it by index if it is not JSON.
		expect(enc().encode({ pos: 1, text: "{nope", end: 0 })).toEqual({ text: '{"_id":"hp:f:000000000001","_event_time":1000,nope' });
		expect(enc().encode({ pos: 1, text: "nope", end: 0 })).toHaveProperty("error");
		expect(enc().encode({ pos: 1, text: "{}", end: 0 })).toEqual({ text: '{"_event_time":1000,"_id":"hp:f:000000000001"}' });
		const csv = enc({ typing: "text" });
		expect(
			parsed(
				csv.encode({
					pos: 3,
					row: { item_id: "007", n: "3", price: "", ok: "yes", meta: '{"a":1}', tags: '["t"]', emb: "[1,2]", name: "x", _op: "", _event_time: "" },
					end: 0,
				}),
			),
		).toEqual({
			item_id: "007",
			n: 3,
			price: null,
			ok: true,
			meta: { a: 1 },
			tags: ["t"],
			emb: [1, 2],
			name: "x",
			_event_time: 1000,
			_id: "hp:f:000000000003",
		});
		expect(csv.encode({ pos: 4, row: { item_id: "a", n: "x", ok: "?" }, end: 0 })).toEqual({
			error: 'n: "x" is not an integer; ok: "?" is not a boolean (true/false, 1/0, yes/no)',
		});
	});
});

describe("NDJSON lines", () => {
	it("numbers lines (blank ones too), drops \\r, and gives offsets a reader can seek to", async () => {
		const file = path.join(dir, "lines.ndjson");
		writeFileSync(file, '{"a":1}\r\n\n{"a":2}\n  \n{"a":"é"}\n{"a":4}');
		const items = await collect(ndjsonSource(file, 0).items());
		expect(items.map((i) => [i.pos, i.text])).toEqual([
			[1, '{"a":1}'],
			[3, '{"a":2}'],
			[5, '{"a":"é"}'],
			[6, '{"a":4}'],
		]);
		const after = items[1] as SourceItem;
		const rest = await collect(ndjsonSource(file, 0).items({ offset: after.end, pos: after.pos }));
		expect(rest).toEqual(items.slice(2));
	});

	it("drops a byte-order mark before the first line, so that line is JSON for load and push alike", async () => {
		const file = path.join(dir, "bom.ndjson");
		writeFileSync(file, '\uFEFF{"item_id":"a"}\r\n{"item_id":"b"}\r\n');
		const items = await collect(ndjsonSource(file, 0).items());
		expect(items.map((i) => [i.pos, i.text])).toEqual([
			[1, '{"item_id":"a"}'],
			[2, '{"item_id":"b"}'],
		]);
		const encoded = new RowEncoder({ spec, typing: "json", idPrefix: "hp:f:", defaultEventTime: 1000 }).encode(items[0] as SourceItem);
		expect(encoded).toEqual({ text: '{"_id":"hp:f:000000000001","_event_time":1000,"item_id":"a"}' });
	});

	it("splits lines across read chunks", async () => {
		async function* pieces() {
			yield Buffer.from('{"a":');
			yield Buffer.from('1}\n{"b"');
			yield Buffer.from(":2}\n");
		}
		expect((await collect(ndjsonLines(pieces()))).map((i) => [i.pos, i.text, i.end])).toEqual([
			[1, '{"a":1}', 8],
			[2, '{"b":2}', 16],
		]);
	});
});

describe("CSV and Parquet readers", () => {
	it("CSV: rows with their line numbers, a record with the wrong cell count rejected in line order", async () => {
		const file = path.join(dir, "rows.csv");
		writeFileSync(file, 'a,b\n1,2\n\n"x\ny",3\n4\n5,6\n');
		const items = await collect(csvSource(file, 0).items());
		expect(items.map((i) => [i.pos, i.row ?? i.error])).toEqual([
			[2, { a: "1", b: "2" }],
			[5, { a: "x\ny", b: "3" }],
			[6, "Invalid Record Length: columns length is 2, got 1"],
			[7, { a: "5", b: "6" }],
		]);
	});

	it("CSV: a quoted cell spanning lines of a CRLF file counts its line end once, for rows and rejects after it", async () => {
		const file = path.join(dir, "crlf.csv");
		writeFileSync(file, '\uFEFFa,b\r\n1,2\r\n\r\n"x\r\ny\r\nz",3\r\n4\r\n"p\r\nq",5,6\r\n7,8\r\n');
		const items = await collect(csvSource(file, 0).items());
		expect(items.map((i) => [i.pos, i.row ?? i.error])).toEqual([
			[2, { a: "1", b: "2" }],
			[6, { a: "x\r\ny\r\nz", b: "3" }],
			[7, "Invalid Record Length: columns length is 2, got 1"],
			[9, "Invalid Record Length: columns length is 2, got 3"],
			[10, { a: "7", b: "8" }],
		]);
	});

	it("CSV: a record that fails to parse is rejected with a reason of one readable line, not the whole field it gave up on", async () => {
		const file = path.join(dir, "long-bad.csv");
		writeFileSync(file, `a,b\n1,x${"y".repeat(5000)}"z\n2,3\n`);
		const items = await collect(csvSource(file, 0).items());
		expect(items.map((i) => i.pos)).toEqual([2, 3]);
		expect(items[0]?.error).toMatch(/^Invalid Opening Quote: a quote is found on field "b" at line 2, value is "x/);
		expect(items[0]?.error?.length).toBeLessThanOrEqual(203);
		expect(items[1]?.row).toEqual({ a: "2", b: "3" });
	});

	it("CSV: a record csv-parse finds several faults in is one rejected row, not one per fault", async () => {
		const file = path.join(dir, "many-faults.csv");
		// An unquoted JSON list of strings: csv-parse reports an opening quote twice for each of these lines.
		writeFileSync(file, 'a,b\n1,["x"]\n2,3\n3,["q"]\n4,5\n');
		const items = await collect(csvSource(file, 0).items());
		expect(items.map((i) => [i.pos, i.row ?? i.error?.slice(0, 21)])).toEqual([
			[2, "Invalid Opening Quote"],
			[3, { a: "2", b: "3" }],
			[4, "Invalid Opening Quote"],
			[5, { a: "4", b: "5" }],
		]);
	});

	it("CSV: a header that names a column twice is refused, not read as its last cell", async () => {
		const file = path.join(dir, "dup.csv");
		writeFileSync(file, "id,score,score\na,1,2\n");
		await expect(collect(csvSource(file, 0).items())).rejects.toThrow(/not valid CSV: the header names column "score" twice/);
	});

	it("Parquet: typed rows across row groups and ranges, from the start or from a row", async () => {
		const n = 2 * RANGE_ROWS + 123;
		const file = path.join(dir, "rows.parquet");
		parquetWriteFile({
			filename: file,
			rowGroupSize: RANGE_ROWS + 77,
			columnData: [
				{ name: "k", data: Array.from({ length: n }, (_, i) => `k${i}`), type: "STRING" },
				{ name: "n", data: Array.from({ length: n }, (_, i) => BigInt(i)), type: "INT64" },
				{ name: "v", data: Array.from({ length: n }, (_, i) => [i, 0.5]), type: "JSON" },
			],
		});
		const source = await parquetSource(file);
		expect(source.total).toBe(n);
		const all = await collect(source.items());
		expect(all).toHaveLength(n);
		expect(all.map((i) => i.pos)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
		expect(all[RANGE_ROWS + 80]).toEqual({
			pos: RANGE_ROWS + 81,
			end: RANGE_ROWS + 81,
			row: { k: `k${RANGE_ROWS + 80}`, n: BigInt(RANGE_ROWS + 80), v: [RANGE_ROWS + 80, 0.5] },
		});
		const tail = await collect(source.items({ offset: n - 5, pos: n - 5 }));
		expect(tail).toEqual(all.slice(n - 5));
	});
});

describe("chunks", () => {
	const items = (n: number, from = 1): SourceItem[] =>
		Array.from({ length: n }, (_, i) => ({ pos: from + i, text: `{"k":${from + i}}`, end: (from + i) * 10 }));
	async function* batches(list: SourceItem[], size = 7) {
		for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
	}
	const encode = (i: SourceItem) => (i.pos % 10 === 0 ? { error: "tenth" } : i.pos === 13 ? { text: "x".repeat(200) } : { text: i.text ?? "" });

	it("cut at the row and byte limits, the same from the start or from any chunk boundary", async () => {
		const all = items(60);
		const limits = { rows: 5, bytes: 64 };
		const whole = await allChunks(chunked(batches(all), encode, limits, { index: 0, end: { offset: 0, pos: 0 } }));
		for (const c of whole) {
			expect(c.lines.length).toBeLessThanOrEqual(5);
			expect(c.bytes).toBeLessThanOrEqual(64);
			expect(c.items).toBe(c.lines.length + c.localRejects.length);
		}
		expect(whole.reduce((n, c) => n + c.items, 0)).toBe(60);
		expect(whole.flatMap((c) => c.localRejects.map((r) => r.pos))).toEqual([10, 13, 20, 30, 40, 50, 60]);
		expect(whole.flatMap((c) => c.localRejects).find((r) => r.pos === 13)?.error).toMatch(/more than a chunk's 64/);
		// Resume from the end of chunk 3, as a seekable source does: the chunks that follow are identical.
		const k = whole[3] as Chunk;
		const rest = all.filter((i) => i.pos > k.end.pos);
		const resumed = await allChunks(chunked(batches(rest, 3), encode, limits, { index: k.index + 1, end: k.end }));
		expect(resumed).toEqual(whole.slice(4));
	});
});

describe("checkpoints", () => {
	const identity: LoadIdentity = { dataset: "d", file: "/f", size: 10, mtime_ms: 5, format: "ndjson", event_time_column: null };
	const outcome = (offset: number, rejections = 0) => ({
		items: 10,
		imported: 10 - rejections,
		unchanged: 0,
		rejections: Array.from({ length: rejections }, (_, i) => ({ pos: offset + i, error: "bad" })),
		end: { offset, pos: offset },
	});

	it("advance the done prefix over chunks that finished out of order, and survive a reload", () => {
		const file = path.join(dir, "cp.json");
		const cp = Checkpoint.fresh(file, identity, { chunk_rows: 10, chunk_bytes: 1000 });
		cp.record(1, outcome(200, 1));
		cp.record(3, outcome(400));
		expect(cp.prefix.chunks).toBe(0);
		cp.record(0, outcome(100, 2));
		expect(cp.prefix).toEqual({ chunks: 2, end: { offset: 200, pos: 200 } });
		expect([0, 1, 2, 3].map((i) => cp.isDone(i))).toEqual([true, true, false, true]);

		const again = Checkpoint.resume(file, identity);
		expect(again?.prefix).toEqual(cp.prefix);
		expect(again?.totals).toEqual({ rows: 30, imported: 27, unchanged: 0, rejected: 3 });
		expect(again?.isDone(3)).toBe(true);
		expect(again?.isDone(2)).toBe(false);
		expect(JSON.parse(readFileSync(file, "utf8")).chunks).toEqual({ chunk_rows: 10, chunk_bytes: 1000 });
	});

	it("refuse a checkpoint of another file or of a file that changed", () => {
		const file = path.join(dir, "cp2.json");
		Checkpoint.fresh(file, identity, { chunk_rows: 10, chunk_bytes: 1000 }).save();
		expect(() => Checkpoint.resume(file, { ...identity, mtime_ms: 6 })).toThrow(UsageError);
		expect(() => Checkpoint.resume(file, { ...identity, mtime_ms: 6 })).toThrow(/changed since/);
		expect(Checkpoint.resume(path.join(dir, "none.json"), identity)).toBeUndefined();
	});

	it("refuse a file that is JSON but not a checkpoint, as bad usage that says so", () => {
		const file = path.join(dir, "cp3.json");
		for (const text of ["null", "[]", '{"version":1}', `{"version":1,"identity":${JSON.stringify(identity)}}`]) {
			writeFileSync(file, text);
			expect(() => Checkpoint.resume(file, identity), text).toThrow(UsageError);
		}
		writeFileSync(file, `{"version":1,"identity":${JSON.stringify(identity)}}`);
		expect(() => Checkpoint.resume(file, identity)).toThrow(/is not a checkpoint of hotpath load; delete it/);
	});

	it("are locked while a load runs: a second load is refused while the first's process lives, a dead one's lock is taken over", () => {
		const file = path.join(dir, "cp4.json");
		const lock = CheckpointLock.acquire(file);
		expect(readFileSync(`${file}.lock`, "utf8")).toBe(String(process.pid));
		lock.release();
		expect(existsSync(`${file}.lock`)).toBe(false);
		// Held by a process that still runs (this test's parent).
		writeFileSync(`${file}.lock`, String(process.ppid));
		expect(() => CheckpointLock.acquire(file)).toThrow(UsageError);
		expect(() => CheckpointLock.acquire(file)).toThrow(new RegExp(`another hotpath load \\(pid ${process.ppid}\\) is using the checkpoint`));
		// Held by one that is gone.
		const gone = spawnSync(process.execPath, ["-e", "process.pid"]).pid as number;
		writeFileSync(`${file}.lock`, String(gone));
		CheckpointLock.acquire(file).release();
		expect(existsSync(`${file}.lock`)).toBe(false);
	});
});
