/**
 * Time, at its edges: inputs a new user sends to history and as_of that must be 4xx problems (a
 * time past what a Date holds, since after until, where an inherited as_of is named), aggregates
 * read as of days back once the cron has dropped the fine tiles, an aggregate whose window moves
 * across a day, and aggregates in GraphQL.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DAY, HOUR, MINUTE } from "../../src/aggregates/windows";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { call, createDataset, EVENTS_QUEUE, env, expectJson, expectProblem, message, runQueue } from "./helpers";

const importRows = async (ds: string, rows: unknown[]) => expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);
const cron = () =>
	(worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
		createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
		env,
		createExecutionContext(),
	);
const gql = async (query: string) =>
	expectJson<{ data: Record<string, unknown> | null; errors?: { message: string; extensions: { code: string } }[] }>(
		await call("POST", "/graphql", { json: { query } }),
		200,
	);

describe("time parameters a Date cannot hold, and ranges that hold nothing", () => {
	it("as_of past the last time a Date holds is a 400 naming as_of, on record reads, lookups and GraphQL (not a 500)", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		await importRows(ds, [{ id: "k", a: 1, _event_time: Date.now() - HOUR }]);
		const max = "9007199254740991";
		for (const key of ["k", "nobody"]) {
			const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/${key}?as_of=${max}`), 400);
			expect(p.errors?.[0]?.pointer).toBe("as_of");
		}
		const l = await expectProblem(await call("POST", "/v1/lookup", { json: { as_of: Number(max), requests: [{ dataset: ds, keys: ["k"] }] } }), 400);
		expect(l.errors?.[0]?.pointer).toBe("/as_of");
		const g = await gql(`{ ${ds}(keys: ["nobody"], as_of: "${max}") { key status } }`);
		expect(g.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
		const h = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k/history?until=${max}`), 400);
		expect(h.errors?.[0]?.pointer).toBe("until");
	});

	it("an empty as_of, since or until is a 400 naming it, never a quiet read of current values", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		await importRows(ds, [{ id: "k", a: 1, _event_time: Date.now() - HOUR }]);
		expect((await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?as_of=`), 400)).errors?.[0]?.pointer).toBe("as_of");
		for (const body of [{ as_of: "", requests: [{ dataset: ds, keys: ["k"] }] }, { requests: [{ dataset: ds, keys: ["k"], as_of: "" }] }]) {
			const p = await expectProblem(await call("POST", "/v1/lookup", { json: body }), 400);
			expect(p.errors?.[0]?.pointer).toMatch(/as_of$/);
		}
		for (const q of ["since=", "until="]) {
			const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k/history?${q}`), 400);
			expect(p.errors?.[0]?.pointer).toBe(q.slice(0, -1));
		}
		const g = await gql(`{ ${ds}(keys: ["k"], as_of: "") { key status } }`);
		expect(g.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
	});

	it("a history range with since after until is a 400 naming since, in REST and GraphQL", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		await importRows(ds, [{ id: "k", a: 1, _event_time: Date.now() - HOUR }]);
		const now = Date.now();
		const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k/history?since=${now}&until=${now - HOUR}`), 400);
		expect(p.errors?.[0]?.pointer).toBe("since");
		const g = await gql(`{ ${ds}_history(key: "k", since: "${now}", until: "${now - HOUR}") { versions { event_id } } }`);
		expect(g.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
		// Equal bounds are a range of one instant, not a mistake.
		await expectJson(await call("GET", `/v1/datasets/${ds}/records/k/history?since=${now}&until=${now}`), 200);
	});

	it("a lookup's top-level as_of before the history is named at /as_of, once; a top-level null means current values", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		await importRows(ds, [{ id: "k", a: 1, _event_time: Date.now() - HOUR }]);
		const p = await expectProblem(
			await call("POST", "/v1/lookup", {
				json: {
					as_of: 1000,
					requests: [
						{ dataset: ds, keys: ["k"] },
						{ dataset: ds, keys: ["k"], as_of: 2000 },
					],
				},
			}),
			400,
		);
		expect(p.errors?.map((e) => e.pointer)).toEqual(["/as_of", "/requests/1/as_of"]);
		const ok = await expectJson<{ results: { records: { value: unknown }[] }[] }>(
			await call("POST", "/v1/lookup", { json: { as_of: null, requests: [{ dataset: ds, keys: ["k"] }] } }),
			200,
		);
		expect(ok.results[0]?.records[0]?.value).toEqual({ a: 1 });
	});
});

describe("aggregates as of days back", () => {
	it("stay exact after the cron dropped the minute tiles of then: the span they covered is read from the log", async () => {
		const ds = await createDataset({
			key: "id",
			fields: { p: "float" },
			history_days: 7,
			aggregates: { n: { fn: "count", window: "1h" }, s: { fn: "sum", of: "p", window: "6h" } },
		} as never);
		// Half past an hour three days ago: the 1h window lies in minute tiles only.
		const at = Math.floor(Date.now() / HOUR) * HOUR - 3 * DAY + 30 * MINUTE;
		const facts = Array.from({ length: 10 }, (_, i) => ({
			id: "k",
			p: i + 1,
			_event_time: at - 5 * MINUTE - i * 5 * MINUTE - 7_000,
			_op: "patch",
			_id: `e${i}`,
		}));
		await importRows(ds, facts);
		const read = async () =>
			(await expectJson<{ value: { n: number; s: number } }>(await call("GET", `/v1/datasets/${ds}/records/k?fields=n,s&as_of=${at}`), 200)).value;
		const want = { n: facts.filter((f) => f._event_time > at - HOUR).length, s: 55 };
		expect(await read()).toEqual(want);
		await cron();
		expect(await read()).toEqual(want);
	});
});

describe("an aggregate whose window moves across a day", () => {
	it("starts again from tiles of its new resolutions, backfilled from the log: the count stays exact both ways", async () => {
		const spec = (window: string) => ({ key: "id", fields: { p: "float" }, history_days: 7, aggregates: { n: { fn: "count", window } } });
		const ds = await createDataset(spec("24h") as never);
		const now = Date.now();
		// A fact every 7 minutes over the last 23 hours, away from tile edges: some in the day tiles a
		// 2d window reads (before today's midnight), some in the minute tiles a 24h window reads.
		const facts = Array.from({ length: 195 }, (_, i) => ({
			id: "k",
			p: i,
			_event_time: now - 10 * MINUTE - i * 7 * MINUTE - 7_000,
			_op: "patch",
			_id: `e${i}`,
		}));
		await importRows(ds, facts);
		const count = async () => (await expectJson<{ value: { n: number } }>(await call("GET", `/v1/datasets/${ds}/records/k?fields=n`), 200)).value.n;
		const backfill = async () => {
			const { results } = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1 AND done = 0").bind(ds).all<{ job: string }>();
			for (const { job } of results) for (let i = 0; i < 3; i++) await runQueue(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, backfill: { job } }))]);
		};
		expect(await count()).toBe(facts.length);
		for (const window of ["2d", "24h"]) {
			await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: spec(window) }), 200);
			await backfill();
			expect(await count(), `after the window became ${window}`).toBe(facts.length);
		}
		// A window that stays on the same side of a day keeps its tiles (and its since).
		const since = (await expectJson<{ aggregates: { n: { since: number } } }>(await call("GET", `/v1/datasets/${ds}`), 200)).aggregates.n.since;
		expect(since).toBeGreaterThan(now);
		const put = await expectJson<{ aggregates: { n: { since: number } } }>(await call("PUT", `/v1/datasets/${ds}`, { json: spec("23h") }), 200);
		expect(put.aggregates.n.since).toBe(since);
		expect(await count()).toBe(facts.length);
	});
});

describe("aggregates in GraphQL", () => {
	it("come back in value beside the fields, may be named in fields, and follow as_of", async () => {
		const aggregates = {
			clicks: { fn: "count", window: "1h" },
			spend: { fn: "sum", of: "p", window: "24h" },
			top: { fn: "max", of: "p", window: "24h" },
			avg: { fn: "mean", of: "p", window: "24h" },
			items: { fn: "last_n", of: "item", n: 2, window: "24h" },
			kinds: { fn: "distinct", of: "item", window: "24h" },
		};
		const ds = await createDataset({ key: "id", fields: { p: "float", item: "string" }, history_days: 7, aggregates } as never);
		const now = Date.now();
		await importRows(ds, [
			{ id: "k", p: 2, item: "a", _event_time: now - 3 * HOUR, _op: "patch", _id: "e1" },
			{ id: "k", p: 4, item: "b", _event_time: now - 10 * MINUTE, _op: "patch", _id: "e2" },
		]);
		const rest = (await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${ds}/records/k`), 200)).value;
		expect(rest).toMatchObject({ clicks: 1, spend: 6, top: 4, avg: 3, items: ["b", "a"], kinds: 2 });
		const sel = "p item clicks spend top avg items kinds";
		// Both execution paths: plain selections are rendered, a __typename in the value is not.
		for (const extra of ["", " __typename"]) {
			const g = await gql(`{ ${ds}(keys: ["k", "nobody"]) { key value { ${sel}${extra} } } }`);
			expect(g.errors).toBeUndefined();
			const rows = g.data?.[ds] as { key: string; value: Record<string, unknown> | null }[];
			const { __typename: _, ...value } = rows[0]?.value ?? {};
			expect(value).toEqual({ p: 4, item: "b", clicks: 1, spend: 6, top: 4, avg: 3, items: ["b", "a"], kinds: 2 });
			expect(rows[1]?.value).toBeNull();
		}
		const projected = await gql(`{ ${ds}(keys: ["k"], fields: ["clicks"]) { value { p clicks } } }`);
		expect(projected.errors).toBeUndefined();
		expect((projected.data?.[ds] as { value: unknown }[] | undefined)?.[0]?.value).toEqual({ p: null, clicks: 1 });
		const past = await gql(`{ ${ds}(keys: ["k"], as_of: "${now - HOUR}") { value { p clicks spend items } } }`);
		expect(past.errors).toBeUndefined();
		expect((past.data?.[ds] as { value: unknown }[] | undefined)?.[0]?.value).toEqual({ p: 2, clicks: 0, spend: 2, items: ["a"] });
	});
});

describe("a sum past the largest double", () => {
	it("is null in REST and in GraphQL on both execution paths, never a field error (values that JSON cannot write)", async () => {
		const aggregates = { spend: { fn: "sum", of: "p", window: "24h" }, avg: { fn: "mean", of: "p", window: "24h" } };
		const ds = await createDataset({ key: "id", fields: { p: "float" }, history_days: 7, aggregates } as never);
		const now = Date.now();
		await importRows(ds, [
			{ id: "k", p: 1.5e308, _event_time: now - 20 * MINUTE, _op: "patch", _id: "e1" },
			{ id: "k", p: 1.5e308, _event_time: now - 10 * MINUTE, _op: "patch", _id: "e2" },
		]);
		const rest = (await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${ds}/records/k`), 200)).value;
		expect(rest).toMatchObject({ spend: null, avg: null });
		for (const extra of ["", " __typename"]) {
			const g = await gql(`{ ${ds}(keys: ["k"]) { value { spend avg${extra} } } }`);
			expect(g.errors).toBeUndefined();
			expect((g.data?.[ds] as { value: Record<string, unknown> }[] | undefined)?.[0]?.value).toMatchObject({ spend: null, avg: null });
		}
	});
});
