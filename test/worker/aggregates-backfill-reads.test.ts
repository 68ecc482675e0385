/**
 * Reads of an aggregate whose backfill has not reached a key yet: an aggregate added to a dataset
 * that already has facts (or one whose window moved across a day) starts from empty tiles, and the
 * backfill folds the logged facts in later (30 s later, then a page of keys at a time). Meanwhile a
 * read must still count them, not answer 0 as if no fact were there.
 */
import { describe, expect, it } from "vitest";
import { BACKFILL_PAGE_KEYS, backfillPage } from "../../src/aggregates/backfill";
import { aggregatesAt } from "../../src/aggregates/read";
import { HOUR, MINUTE } from "../../src/aggregates/windows";
import type { DatasetSpec } from "../../src/registry/spec";
import { call, createDataset, EVENTS_QUEUE, env, expectJson, message, rowsReadOf, runQueue } from "./helpers";

const importRows = async (ds: string, rows: unknown[]) => expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);

type Values = Record<string, unknown>;
const read = async (ds: string, key: string, query = "") =>
	(await expectJson<{ value: Values }>(await call("GET", `/v1/datasets/${ds}/records/${key}${query}`), 200)).value;

/** A queue that keeps nothing: each page is run here, one at a time, not by the queue's consumer. */
const noQueue = { send: async () => {} } as unknown as Queue<unknown>;

/** Runs one page of every backfill job of the dataset not done yet; returns how many ran. */
async function runOnePage(ds: string): Promise<number> {
	const spec = await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200);
	const { results } = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1 AND done = 0").bind(ds).all<{ job: string }>();
	for (const { job } of results) await backfillPage(env.DB, noQueue, spec, job);
	return results.length;
}

describe("an aggregate whose backfill has not reached a key yet", () => {
	it("counts the key's logged facts all the same, before, during and after the backfill, each once", async () => {
		const base = { key: "id", fields: { p: "float", item: "string" }, ttl_seconds: 86_400, history_days: 7 };
		const ds = await createDataset(base as never);
		const now = Date.now();
		// More keys than one backfill page, each with 6 facts over the last 3 hours (whole tiles and edges).
		const keys = Array.from({ length: BACKFILL_PAGE_KEYS + 20 }, (_, i) => `k${String(i).padStart(3, "0")}`);
		const rows = keys.flatMap((id, i) =>
			Array.from({ length: 6 }, (_, j) => ({ id, p: i + j, item: `it${j % 4}`, _event_time: now - 7_000 - j * 29 * MINUTE, _id: `f${i}-${j}`, _op: "patch" })),
		);
		for (let i = 0; i < rows.length; i += 2000) await importRows(ds, rows.slice(i, i + 2000));
		const aggregates = {
			n: { fn: "count", window: "24h" },
			s: { fn: "sum", of: "p", window: "2h" },
			lo: { fn: "min", of: "p", window: "24h" },
			d: { fn: "distinct", of: "item", window: "24h" },
		};
		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: { ...base, aggregates } }), 200);
		// One fact after the change, counted by the consumer as it comes.
		await importRows(ds, [{ id: "k000", p: 1000, item: "new", _event_time: now - 5_000, _id: "after", _op: "patch" }]);

		const want = (i: number, extra = false) => ({
			n: 6 + (extra ? 1 : 0),
			// Facts at 0, 29, 58, 87 and 116 minutes back are within 2 hours.
			s: [0, 1, 2, 3, 4].reduce((a, j) => a + i + j, 0) + (extra ? 1000 : 0),
			lo: i,
			d: 4 + (extra ? 1 : 0),
		});
		const first = keys[0] as string;
		const last = keys[keys.length - 1] as string;
		const check = async () => {
			expect(await read(ds, first)).toMatchObject(want(0, true));
			expect(await read(ds, last)).toMatchObject(want(keys.length - 1));
			// As of a past time too (tiles of that window), and through a lookup.
			expect(await read(ds, last, `?as_of=${now - HOUR}`)).toMatchObject({ n: 3 });
			const looked = await expectJson<{ results: { records: { value: Values }[] }[] }>(
				await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: [first, last], fields: ["n", "s"] }] } }),
				200,
			);
			expect(looked.results[0]?.records.map((r) => r.value)).toEqual([
				{ n: 7, s: want(0, true).s },
				{ n: 6, s: want(keys.length - 1).s },
			]);
		};
		// Before the backfill ran (it waits BACKFILL_DELAY_S), after its first page (the first keys
		// done, the last ones not), and once it is done: the same answers.
		await check();
		expect(await runOnePage(ds)).toBe(1);
		await check();
		expect(await runOnePage(ds)).toBe(1);
		expect(await runOnePage(ds)).toBe(0);
		await check();
	});

	it("a window moved across a day keeps counting the facts while its new tiles are backfilled", async () => {
		const base = { key: "id", fields: { p: "float" }, ttl_seconds: 86_400, history_days: 7 };
		const ds = await createDataset({ ...base, aggregates: { n: { fn: "count", window: "24h" } } } as never);
		const now = Date.now();
		await importRows(
			ds,
			Array.from({ length: 5 }, (_, j) => ({ id: "k", p: j, _event_time: now - 7_000 - j * 5 * HOUR, _id: `f${j}`, _op: "patch" })),
		);
		expect(await read(ds, "k")).toMatchObject({ n: 5 });
		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: { ...base, aggregates: { n: { fn: "count", window: "2d" } } } }), 200);
		// The serving aggregate does not drop to what its empty new tiles hold.
		expect(await read(ds, "k")).toMatchObject({ n: 5 });
		while (await runOnePage(ds));
		expect(await read(ds, "k")).toMatchObject({ n: 5 });
	});
});

describe("an aggregate read with no backfill running", () => {
	it("looks for running jobs without reading every job ever recorded (the rows D1 reads, from its meta)", async () => {
		const ds = await createDataset({ key: "id", fields: { p: "float" }, history_days: 7, aggregates: { n: { fn: "count", window: "24h" } } } as never);
		await importRows(ds, [{ id: "k", p: 1, _event_time: Date.now() - HOUR, _id: "f1" }]);
		// Jobs of other datasets, all done: what a deployment keeps after many aggregates were added.
		const rows = Array.from({ length: 300 }, (_, i) => [`other${i}:1:n`, `other${i}`, '["n"]', 1, "zz", 10, 1, 1]);
		await env.DB.prepare(
			"INSERT INTO agg_backfills (job, dataset, aggs, before, cursor, keys_done, done, started_at) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7 FROM json_each(?1)",
		)
			.bind(JSON.stringify(rows))
			.run();
		const measured = rowsReadOf(env.DB, (sql) => sql.includes("FROM agg_backfills AS j"));
		const at = Date.now();
		const spec = await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200);
		const values = await aggregatesAt(measured.db, spec, ["k"], at);
		expect(values.get("k")?.n).toBe(1);
		expect(measured.rowsRead()).toBeLessThan(10);
	});
});

describe("a dataset created with its aggregates", () => {
	it("is read without looking in the log for uncounted facts while its first job waits: none can predate it", async () => {
		const ds = await createDataset({ key: "id", fields: { p: "float" }, history_days: 7, aggregates: { n: { fn: "count", window: "7d" } } } as never);
		const now = Date.now();
		const facts = 2000;
		await importRows(
			ds,
			Array.from({ length: facts }, (_, i) => ({ id: "k", p: i, _event_time: now - 1000 - i * MINUTE, _id: `f${i}`, _op: "patch" })),
		);
		// The job is there (a consumer on the registry of a moment before could have logged facts
		// without the aggregate: its pages count those), and waiting for its first page.
		const job = await env.DB.prepare("SELECT done, new_dataset FROM agg_backfills WHERE dataset = ?1").bind(ds).first<{ done: number; new_dataset: number }>();
		expect(job).toEqual({ done: 0, new_dataset: 1 });
		const measured = rowsReadOf(env.DB, (sql) => sql.includes("FROM agg_backfills AS j"));
		const spec = await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200);
		expect((await aggregatesAt(measured.db, spec, ["k"], Date.now())).get("k")?.n).toBe(facts);
		// Looking for uncounted facts read every fact of the key in the window: 2,000 rows.
		expect(measured.rowsRead()).toBeLessThan(10);
	});
});

describe("a backfill page run by a consumer whose registry predates the job", () => {
	it("reads the spec from D1 rather than ending the job without counting anything", async () => {
		const base = { key: "id", fields: { p: "float" }, ttl_seconds: 86_400, history_days: 7 };
		const ds = await createDataset(base as never);
		const now = Date.now();
		await importRows(
			ds,
			[1, 2, 3].map((i) => ({ id: "k", p: i, _event_time: now - i * MINUTE, _id: `f${i}`, _op: "patch" })),
		);
		// This isolate's registry holds the spec without aggregates. The aggregate and its job are
		// written to D1 without moving the registry's version: as an isolate sees a PUT it has not
		// checked for yet (its version check failed, and it serves the last registry it read).
		expect((await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200)).aggregates).toBeUndefined();
		const since = now - 1000;
		const spec = { name: ds, ...base, aggregates: { n: { fn: "count", window: "1h", since } } };
		const job = `${ds}:${since}:n`;
		await env.DB.batch([
			env.DB.prepare("UPDATE datasets SET spec = ?2 WHERE name = ?1").bind(ds, JSON.stringify(spec)),
			env.DB.prepare(
				"INSERT INTO agg_backfills (job, dataset, aggs, before, cursor, keys_done, done, started_at) VALUES (?1, ?2, '[\"n\"]', ?3, NULL, 0, 0, ?3)",
			).bind(job, ds, since),
		]);
		const result = await runQueue(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, backfill: { job } }))]);
		expect(result.retryMessages).toEqual([]);
		const row = await env.DB.prepare("SELECT done, keys_done FROM agg_backfills WHERE job = ?1").bind(job).first<{ done: number; keys_done: number }>();
		expect(row).toEqual({ done: 1, keys_done: 1 });
		const tiles = await env.DB.prepare("SELECT sum(cnt) AS n FROM agg_tiles WHERE dataset = ?1 AND res = ?2").bind(ds, MINUTE).first<{ n: number }>();
		expect(tiles?.n).toBe(3);
	});
});
