/**
 * What the cron's maintenance costs D1 in rows read (D1 bills them) must not grow with data it
 * leaves alone: the event log's bounds are two reads off its ends, the tiles' retention reads the
 * tiles it drops, not every tile kept, and the log's prune reads the entries it prunes, not those of
 * a longer history it keeps (not once per chunk, and not again on every cron run).
 */
import { describe, expect, it } from "vitest";
import { MINUTE } from "../../src/aggregates/windows";
import { DAY_MS, pruneEventLog } from "../../src/history/retention";
import type { DatasetSpec } from "../../src/registry/spec";
import { pruneTiles } from "../../src/storage/aggregates";
import { logBounds } from "../../src/storage/event-log";
import { call, createDataset, env, expectJson, rowsReadOf, uniqueName } from "./helpers";

const MANY = 5000;

describe("the cost of the cron's maintenance", () => {
	it("finds the event log's lowest and highest seq without reading the log", async () => {
		const dataset = uniqueName("lb");
		await env.DB.prepare(
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
INSERT INTO event_log (dataset, key, event_time, event_id, op, value, applied_at) SELECT ?1, 'k' || (i % 50), i, 'e' || i, 'patch', '{}', ?3 FROM n`,
		)
			.bind(dataset, MANY, Date.now())
			.run();
		const lo = await env.DB.prepare("SELECT seq FROM event_log ORDER BY seq LIMIT 1").first<{ seq: number }>();
		const hi = await env.DB.prepare("SELECT seq FROM event_log ORDER BY seq DESC LIMIT 1").first<{ seq: number }>();

		const measured = rowsReadOf(env.DB);
		expect(await logBounds(measured.db)).toEqual({ lo: lo?.seq, hi: hi?.seq });
		// Scanning the log would read every one of its rows, these 5,000 at least.
		expect(measured.rowsRead()).toBeLessThan(50);
	});

	it("drops old tiles reading those it drops, not every tile it keeps", async () => {
		const dataset = uniqueName("tr");
		const now = Date.now();
		const kept = Math.floor(now / MINUTE) * MINUTE;
		const old = kept - 30 * 24 * 60 * MINUTE;
		// 5,000 tiles still within the minute tiles' retention (and their registers), 3 past it.
		for (const table of ["agg_tiles", "agg_hll"]) {
			const cols = table === "agg_tiles" ? "cnt, sum, mn, mx" : "idx, rank";
			const vals = table === "agg_tiles" ? "1, 1, 1, 1" : "i % 64, 1";
			await env.DB.prepare(
				`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
INSERT INTO ${table} (dataset, key, agg, res, start, ${cols}) SELECT ?1, 'k' || i, 'a', ?3, ?4, ${vals} FROM n`,
			)
				.bind(dataset, MANY, MINUTE, kept)
				.run();
			await env.DB.prepare(
				`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
INSERT INTO ${table} (dataset, key, agg, res, start, ${cols}) SELECT ?1, 'old' || i, 'a', ?2, ?3, ${vals} FROM n`,
			)
				.bind(dataset, MINUTE, old)
				.run();
		}

		const measured = rowsReadOf(env.DB);
		expect(await pruneTiles(measured.db, MINUTE, now - 26 * 60 * MINUTE)).toBeGreaterThanOrEqual(6);
		for (const table of ["agg_tiles", "agg_hll"]) {
			const left = await env.DB.prepare(`SELECT sum(start = ?2) AS kept, sum(start = ?3) AS old FROM ${table} WHERE dataset = ?1`)
				.bind(dataset, kept, old)
				.first<{ kept: number; old: number }>();
			expect(left).toEqual({ kept: MANY, old: 0 });
		}
		// Scanning both tables would read these 10,000 rows (and every other tile) at least.
		expect(measured.rowsRead()).toBeLessThan(500);
	});
	it("prunes the log in chunks, without reading the entries of a longer history it keeps, on any run", async () => {
		const long = await createDataset({ key: "id", fields: { n: "int" }, history_days: 30 } as never);
		const short = await createDataset({ key: "id", fields: { n: "int" }, history_days: 1 } as never);
		const now = Date.now();
		const kept = 6000;
		const due = 4100; // three chunks of 2,000
		// Below every seq since, oldest first: the long history's entries applied ten days ago (kept:
		// it keeps 30 days), then the short one's applied three days ago (past its one day).
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		const insert = `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?3 - 1)
INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at)
SELECT ?2 - ?3 + 1 + i, ?1, 'k' || (i % 100), ?4 + i, 'e' || i, 'upsert', json_object('n', i), ?4 + i FROM n`;
		await env.DB.prepare(insert)
			.bind(short, lowest - 1, due, now - 3 * DAY_MS)
			.run();
		await env.DB.prepare(insert)
			.bind(long, lowest - 1 - due, kept, now - 10 * DAY_MS)
			.run();
		const specs = new Map<string, DatasetSpec>();
		for (const ds of [long, short]) specs.set(ds, await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200));

		const measured = rowsReadOf(env.DB, (sql) => sql.includes("FROM event_log AS l") && sql.includes("ORDER BY l.seq LIMIT"));
		expect((await pruneEventLog(measured.db, specs, now)).pruned).toBe(due);
		// Walking the log from its start read the kept entries at least once per run: 6,000 rows and more.
		expect(measured.rowsRead()).toBeLessThan(due + 500);
		const left = await env.DB.prepare("SELECT dataset, count(*) AS n FROM event_log WHERE dataset IN (?1, ?2) GROUP BY dataset")
			.bind(long, short)
			.all<{ dataset: string; n: number }>();
		expect(left.results).toEqual([{ dataset: long, n: kept }]);
		const bases = await env.DB.prepare("SELECT count(*) AS n FROM history_base WHERE dataset = ?1").bind(short).first<{ n: number }>();
		expect(bases?.n).toBe(100);

		// The next cron run (an hour later) finds nothing to prune, and reads next to nothing to find
		// that out: every statement of it counted, the search for the cutoffs' seqs included.
		const again = rowsReadOf(env.DB);
		expect((await pruneEventLog(again.db, specs, now + 3_600_000)).pruned).toBe(0);
		expect(again.rowsRead()).toBeLessThan(500);
	});
});
