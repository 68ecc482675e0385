/**
 * Windowed aggregates: the spec, tiles written once per fact (duplicates and late facts included),
 * reads checked exactly against a brute-force oracle over the facts (distinct within 2%), windows
 * sliding with as_of, the backfill of an aggregate added later, and tile retention.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { rng } from "../../scripts/lib/rng";
import { DAY, HOUR, MINUTE, planWindow } from "../../src/aggregates/windows";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { call, createDataset, EVENTS_QUEUE, env, expectJson, expectProblem, message, runQueue, sleep, uniqueName } from "./helpers";

interface Fact {
	id: string;
	t: number;
	price: number;
	item: string;
}

const AGGS = {
	clicks_1h: { fn: "count", window: "1h" },
	spend_24h: { fn: "sum", of: "price", window: "24h" },
	cheapest_24h: { fn: "min", of: "price", window: "24h" },
	dearest_7d: { fn: "max", of: "price", window: "7d" },
	avg_price_6h: { fn: "mean", of: "price", window: "6h" },
	last_items: { fn: "last_n", of: "item", n: 5, window: "7d" },
	items_7d: { fn: "distinct", of: "item", window: "7d" },
};
const spec = { key: "user_id", fields: { price: "float", item: "string" }, ttl_seconds: 86_400 * 30, history_days: 7, aggregates: AGGS };

/** The aggregates of `facts` over windows ending at `at`, by brute force. */
function oracle(facts: readonly Fact[], at: number) {
	const inWindow = (w: number) => facts.filter((f) => f.t > at - w && f.t <= at);
	const prices = (w: number) => inWindow(w).map((f) => f.price);
	const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
	const d6 = prices(6 * HOUR);
	return {
		clicks_1h: inWindow(HOUR).length,
		spend_24h: sum(prices(DAY)),
		cheapest_24h: prices(DAY).length ? Math.min(...prices(DAY)) : null,
		dearest_7d: prices(7 * DAY).length ? Math.max(...prices(7 * DAY)) : null,
		avg_price_6h: d6.length ? sum(d6) / d6.length : null,
		last_items: inWindow(7 * DAY)
			.sort((a, b) => b.t - a.t || (b.id < a.id ? -1 : 1))
			.slice(0, 5)
			.map((f) => f.item),
		items_7d: new Set(inWindow(7 * DAY).map((f) => f.item)).size,
	};
}

const importRows = async (ds: string, rows: unknown[]) => expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);
const readAsOf = async (ds: string, key: string, at: number) =>
	(await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${ds}/records/${key}?as_of=${at}`), 200)).value;

function expectClose(got: Record<string, unknown>, want: ReturnType<typeof oracle>) {
	expect(got.clicks_1h).toBe(want.clicks_1h);
	expect(got.spend_24h as number).toBeCloseTo(want.spend_24h, 6);
	expect(got.cheapest_24h).toBe(want.cheapest_24h);
	expect(got.dearest_7d).toBe(want.dearest_7d);
	if (want.avg_price_6h === null) expect(got.avg_price_6h).toBeNull();
	else expect(got.avg_price_6h as number).toBeCloseTo(want.avg_price_6h, 6);
	expect(got.last_items).toEqual(want.last_items);
	expect(Math.abs((got.items_7d as number) - want.items_7d)).toBeLessThanOrEqual(Math.max(1, want.items_7d * 0.02));
}

describe("window plans", () => {
	it("cover (at - length, at] exactly once: log edges plus whole tiles, coarse where they fit", () => {
		const random = rng(7);
		for (let i = 0; i < 500; i++) {
			const at = 1_800_000_000_000 + Math.floor(random() * 30 * DAY);
			const length = [MINUTE, 5 * MINUTE, HOUR, 6 * HOUR, DAY, 7 * DAY, 30 * DAY][i % 7] as number;
			const plan = planWindow(length, at);
			const parts = [...plan.edges.map((e) => [e.from, e.to]), ...plan.tiles.map((t) => [t.from, t.to])].sort((a, b) => (a[0] as number) - (b[0] as number));
			expect(parts[0]?.[0]).toBe(at - length + 1);
			expect(parts[parts.length - 1]?.[1]).toBe(at + 1);
			for (let j = 1; j < parts.length; j++) expect(parts[j]?.[0]).toBe(parts[j - 1]?.[1]);
			for (const t of plan.tiles) {
				expect(t.from % t.res).toBe(0);
				expect(t.to % t.res).toBe(0);
			}
		}
	});
});

describe("aggregates", () => {
	let ds = "";
	const key = "u1";
	const facts: Fact[] = [];
	const now = Date.now();
	beforeAll(async () => {
		ds = await createDataset(spec as never);
		const random = rng(42);
		for (let i = 0; i < 600; i++) {
			// Spread over the last 7 days, more of them recent.
			const age = Math.floor(random() ** 2 * 7 * DAY);
			facts.push({ id: `f${i}`, t: now - 60_000 - age, price: Math.round(random() * 10_000) / 100, item: `item${Math.floor(random() * 60)}` });
		}
		const rows = facts.map((f) => ({ user_id: key, price: f.price, item: f.item, _event_time: f.t, _id: f.id, _op: "patch" }));
		// In three shuffled imports, a quarter of them sent twice.
		const shuffled = [...rows, ...rows.slice(0, 150)].sort(() => random() - 0.5);
		for (let i = 0; i < shuffled.length; i += 300) await importRows(ds, shuffled.slice(i, i + 300));
	});

	it("equal a brute-force oracle at many points in time (as_of), duplicates counted once", async () => {
		for (const at of [now - 61_000, now - 2 * HOUR - 17_003, now - 26 * HOUR + 5, now - 3 * DAY - 1234, now - 6 * DAY]) {
			expectClose(await readAsOf(ds, key, at), oracle(facts, at));
		}
	});

	it("a current read has them beside the fields, is not cacheable, and a lookup gives the same", async () => {
		const res = await call("GET", `/v1/datasets/${ds}/records/${key}`);
		expect(res.headers.get("cache-control")).toBe("no-cache");
		expect(res.headers.get("etag")).toBeNull();
		const body = (await res.json()) as { value: Record<string, unknown> };
		expect(Object.keys(body.value).sort()).toEqual(["item", "price", ...Object.keys(AGGS)].sort());
		expectClose(body.value, oracle(facts, Date.now()));
		const looked = await expectJson<{ results: { records: { value: Record<string, unknown> }[] }[] }>(
			await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: [key, "nobody"], fields: ["price", "clicks_1h"] }] } }),
			200,
		);
		expect(Object.keys(looked.results[0]?.records[0]?.value ?? {}).sort()).toEqual(["clicks_1h", "price"]);
		expect(looked.results[0]?.records[0]?.value.clicks_1h).toBe(oracle(facts, Date.now()).clicks_1h);
		expect(looked.results[0]?.records[1]?.value).toBeNull();
	});

	// Regression (was a bug): POST /v1/lookup read aggregates once per request, so 60 one-key requests of
	// an aggregate dataset made 60 rounds of D1 statements (1,000 requests: past a Worker's 1,000
	// queries per invocation). Now one read per (dataset, time), each request still cut to its projection.
	it("a lookup of many requests of one dataset reads the aggregates once, each request with its own projection", async () => {
		let tileReads = 0;
		const db = new Proxy(env.DB, {
			get(target, prop) {
				if (prop === "prepare")
					return (sql: string) => {
						if (sql.includes("agg_tiles AS t")) tileReads++;
						return target.prepare(sql);
					};
				const v = Reflect.get(target, prop);
				return typeof v === "function" ? v.bind(target) : v;
			},
		});
		const asks = Array.from({ length: 60 }, (_, i) =>
			i % 3 === 0
				? { dataset: ds, keys: [key] }
				: i % 3 === 1
					? { dataset: ds, keys: [key, "nobody"], fields: ["clicks_1h"] }
					: { dataset: ds, keys: [key], fields: ["item"] },
		);
		const fetcher = worker.fetch as unknown as (r: Request, e: Env, x: ExecutionContext) => Promise<Response>;
		const res = await fetcher(
			new Request("http://hotpath.test/v1/lookup", {
				method: "POST",
				headers: { authorization: "Bearer test-admin-key", "content-type": "application/json" },
				body: JSON.stringify({ requests: asks }),
			}),
			{ ...env, DB: db },
			createExecutionContext(),
		);
		const body = await expectJson<{ results: { records: { key: string; value: Record<string, unknown> | null }[] }[] }>(res, 200);
		expect(tileReads).toBe(1);
		const want = oracle(facts, Date.now());
		body.results.forEach((r, i) => {
			const v = r.records[0]?.value ?? {};
			if (i % 3 === 0) {
				expect(Object.keys(v).sort()).toEqual(["item", "price", ...Object.keys(AGGS)].sort());
				expect(v.clicks_1h).toBe(want.clicks_1h);
			} else if (i % 3 === 1) {
				expect(v).toEqual({ clicks_1h: want.clicks_1h });
				expect(r.records[1]).toMatchObject({ key: "nobody", value: null });
			} else expect(Object.keys(v)).toEqual(["item"]);
		});
	});

	it("a late fact counts in every window it falls into, and a duplicate of it counts once", async () => {
		const late: Fact = { id: "late-1", t: now - 3 * HOUR, price: 0.01, item: "late-item" };
		await importRows(ds, [{ user_id: key, price: late.price, item: late.item, _event_time: late.t, _id: late.id, _op: "patch" }]);
		await importRows(ds, [{ user_id: key, price: late.price, item: late.item, _event_time: late.t, _id: late.id, _op: "patch" }]);
		facts.push(late);
		const at = now - 61_000;
		const got = await readAsOf(ds, key, at);
		expectClose(got, oracle(facts, at));
		expect(got.cheapest_24h).toBe(0.01);
	});

	it("windows slide: what leaves the window stops counting, min and max included", async () => {
		const other = uniqueName("slide");
		const t0 = now - 5 * HOUR;
		const slide: Fact[] = [
			{ id: "a", t: t0, price: 1, item: "x" },
			{ id: "b", t: t0 + 30 * MINUTE, price: 100, item: "y" },
			{ id: "c", t: t0 + 90 * MINUTE, price: 5, item: "z" },
		];
		await importRows(
			ds,
			slide.map((f) => ({ user_id: other, price: f.price, item: f.item, _event_time: f.t, _id: f.id, _op: "patch" })),
		);
		for (const at of [t0 + 10 * MINUTE, t0 + 59 * MINUTE, t0 + 61 * MINUTE, t0 + 100 * MINUTE, t0 + 160 * MINUTE, t0 + 4 * HOUR]) {
			expectClose(await readAsOf(ds, other, at), oracle(slide, at));
		}
	});

	it("the value's JSON Schema has the aggregates", async () => {
		const schema = await expectJson<{ properties: Record<string, { description?: string }> }>(await call("GET", `/v1/datasets/${ds}/schema`), 200);
		expect(schema.properties.items_7d?.description).toBe("distinct of item over the last 7d");
	});
});

describe("the spec", () => {
	it("refuses aggregates that cannot work, naming each", async () => {
		const bad = {
			key: "id",
			fields: { price: "float", item: "string", tags: "string[]" },
			history_days: 7,
			aggregates: {
				price: { fn: "count", window: "1h" },
				s: { fn: "sum", of: "item", window: "1h" },
				m: { fn: "mean", window: "1h" },
				d: { fn: "distinct", of: "tags", window: "1h" },
				l: { fn: "last_n", of: "item", window: "1h" },
				c: { fn: "count", window: "1h", n: 3 },
				w: { fn: "count", window: "31d" },
				h: { fn: "count", window: "8d" },
				z: { fn: "max", of: "nope", window: "1h" },
			},
		};
		// The shape first: an unknown fn, a window that is not minutes, hours or days.
		const shape = await expectProblem(
			await call("PUT", `/v1/datasets/${uniqueName()}`, {
				json: { ...bad, aggregates: { x: { fn: "median", of: "price", window: "1h" }, y: { fn: "count", window: "90s" } } },
			}),
			400,
		);
		expect(shape.errors?.map((e) => e.pointer).sort()).toEqual(["/aggregates/x/fn", "/aggregates/y/window"]);
		const p = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: bad }), 400);
		expect(p.errors?.map((e) => e.pointer).sort()).toEqual(
			[
				"/aggregates/price",
				"/aggregates/s/of",
				"/aggregates/m/of",
				"/aggregates/d/of",
				"/aggregates/l/n",
				"/aggregates/c/n",
				"/aggregates/w/window",
				"/aggregates/h/window",
				"/aggregates/z/of",
			].sort(),
		);
	});

	it("changing an aggregate's fn or field is refused (409); its window may change; a new one is added", async () => {
		const name = uniqueName();
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: { ...spec, aggregates: { n: { fn: "count", window: "1h" } } } }), 201);
		const p = await expectProblem(
			await call("PUT", `/v1/datasets/${name}`, { json: { ...spec, aggregates: { n: { fn: "sum", of: "price", window: "1h" } } } }),
			409,
		);
		expect(p.errors?.[0]?.pointer).toBe("/aggregates/n");
		const ok = await expectJson<{ aggregates: Record<string, { window: string; since: number }> }>(
			await call("PUT", `/v1/datasets/${name}`, {
				json: { ...spec, aggregates: { n: { fn: "count", window: "2h" }, m: { fn: "max", of: "price", window: "1d" } } },
			}),
			200,
		);
		expect(ok.aggregates.n?.window).toBe("2h");
		expect(ok.aggregates.m?.since).toBeGreaterThanOrEqual(ok.aggregates.n?.since ?? Number.POSITIVE_INFINITY);
	});

	it("a spec read back (since included) applies again unchanged; a since sent is not taken", async () => {
		const name = uniqueName();
		const created = await expectJson<{ aggregates: Record<string, { since: number }> }>(
			await call("PUT", `/v1/datasets/${name}`, { json: { ...spec, aggregates: { n: { fn: "count", window: "1h" } } } }),
			201,
		);
		const read = await expectJson<{ aggregates: Record<string, { since: number }> }>(await call("GET", `/v1/datasets/${name}`), 200);
		const again = await expectJson<{ aggregates: Record<string, { since: number }> }>(await call("PUT", `/v1/datasets/${name}`, { json: read }), 200);
		expect(again.aggregates.n?.since).toBe(created.aggregates.n?.since);
		const moved = { ...read, aggregates: { n: { ...read.aggregates.n, since: 1 } } };
		const kept = await expectJson<{ aggregates: Record<string, { since: number }> }>(await call("PUT", `/v1/datasets/${name}`, { json: moved }), 200);
		expect(kept.aggregates.n?.since).toBe(created.aggregates.n?.since);
	});
});

describe("an id sent again with another time or value", () => {
	it("adds nothing to distinct either: the id was applied once, at its first time, with its first value", async () => {
		const name = await createDataset({
			key: "id",
			fields: { item: "string" },
			history_days: 7,
			aggregates: {
				n_1h: { fn: "count", window: "1h" },
				d_1h: { fn: "distinct", of: "item", window: "1h" },
				d_24h: { fn: "distinct", of: "item", window: "24h" },
			},
		} as never);
		const now = Date.now();
		await importRows(name, [{ id: "u", item: "a", _event_time: now - 3 * HOUR, _id: "x1", _op: "patch" }]);
		// Newer (it would change the record) and older (it would not): either way, x1 is not applied again.
		await importRows(name, [{ id: "u", item: "b", _event_time: now - 30 * MINUTE, _id: "x1", _op: "patch" }]);
		await importRows(name, [{ id: "u", item: "c", _event_time: now - 5 * HOUR, _id: "x1", _op: "patch" }]);
		const value = await readAsOf(name, "u", now);
		expect(value).toMatchObject({ item: "a", n_1h: 0, d_1h: 0, d_24h: 1 });
	});
});

describe("an aggregate added later", () => {
	it("is backfilled from the log: facts from before it was added count, each once", async () => {
		const name = await createDataset({ key: "id", fields: { price: "float" }, history_days: 7 } as never);
		const t = Date.now() - 2 * HOUR;
		const rows = Array.from({ length: 40 }, (_, i) => ({ id: `k${i % 4}`, price: i, _event_time: t + i * MINUTE, _id: `e${i}`, _op: "patch" }));
		await importRows(name, rows);
		const res = await expectJson<{ aggregates: Record<string, { since: number }> }>(
			await call("PUT", `/v1/datasets/${name}`, {
				json: {
					key: "id",
					fields: { price: "float" },
					history_days: 7,
					aggregates: { spend: { fn: "sum", of: "price", window: "24h" }, prices: { fn: "distinct", of: "price", window: "24h" } },
				},
			}),
			200,
		);
		// A fact after the change: the consumer counts it.
		await importRows(name, [{ id: "k0", price: 1000, _event_time: Date.now() - MINUTE, _id: "after", _op: "patch" }]);
		const job = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1").bind(name).first<{ job: string }>();
		expect(job).not.toBeNull();
		// The queued page waits BACKFILL_DELAY_S; run the job's pages here, twice each (a redelivery counts nothing twice).
		for (let i = 0; i < 3; i++) {
			const page = message(JSON.stringify({ v: 1, backfill: { job: job?.job } }));
			await runQueue(EVENTS_QUEUE, [page]);
			await runQueue(EVENTS_QUEUE, [{ ...page, attempts: 2 }]);
		}
		const k0 = rows.filter((r) => r.id === "k0").reduce((a, r) => a + r.price, 0) + 1000;
		const got = await expectJson<{ value: { spend: number; prices: number } }>(await call("GET", `/v1/datasets/${name}/records/k0`), 200);
		expect(got.value.spend).toBe(k0);
		expect(got.value.prices).toBe(rows.filter((r) => r.id === "k0").length + 1);
		expect(res.aggregates.spend?.since).toBeLessThanOrEqual(Date.now());
	});
});

describe("an aggregate removed and added again before its backfill ran", () => {
	it("counts each fact once: the first backfill is for the aggregate that was removed", async () => {
		const base = { key: "id", fields: { price: "float" }, history_days: 7 };
		const name = await createDataset(base as never);
		const now = Date.now();
		await importRows(
			name,
			[1, 2, 3].map((i) => ({ id: "k", price: i, _event_time: now - i * 10 * MINUTE - 7_000, _id: `e${i}`, _op: "patch" })),
		);
		const aggregates = { n: { fn: "count", window: "1h" } };
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: { ...base, aggregates } }), 200);
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: base }), 200);
		await sleep(5);
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: { ...base, aggregates } }), 200);
		const { results } = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1").bind(name).all<{ job: string }>();
		expect(results).toHaveLength(2);
		for (const { job } of results) await runQueue(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, backfill: { job } }))]);
		expect(await readAsOf(name, "k", now)).toMatchObject({ n: 3 });
	});
});

describe("an aggregate added later, read as of a past time", () => {
	it("counts the facts of windows that ended before it was added too: the backfill covers what the log holds", async () => {
		const name = await createDataset({ key: "id", fields: { price: "float" }, history_days: 7 } as never);
		const now = Date.now();
		// Facts five hours back (in the minute tiles a 1h window reads), away from tile edges, and one recent.
		const times = [now - 5 * HOUR - 40 * MINUTE - 7_000, now - 5 * HOUR - 30 * MINUTE - 7_000, now - 5 * HOUR - 20 * MINUTE - 7_000, now - 10 * MINUTE];
		await importRows(
			name,
			times.map((t, i) => ({ id: "k", price: i + 1, _event_time: t, _id: `e${i}`, _op: "patch" })),
		);
		const aggregates = {
			n_1h: { fn: "count", window: "1h" },
			spend_1h: { fn: "sum", of: "price", window: "1h" },
			items_1h: { fn: "distinct", of: "price", window: "1h" },
		};
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: { key: "id", fields: { price: "float" }, history_days: 7, aggregates } }), 200);
		const job = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1").bind(name).first<{ job: string }>();
		await runQueue(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, backfill: { job: job?.job } }))]);
		// A training job's point-in-time read of five hours ago sees the facts of the hour before then.
		expect(await readAsOf(name, "k", now - 5 * HOUR)).toMatchObject({ n_1h: 3, spend_1h: 6, items_1h: 3 });
		expect(await readAsOf(name, "k", now)).toMatchObject({ n_1h: 1, spend_1h: 4, items_1h: 1 });
		// A window widened on the same side of a day keeps its tiles: they hold the older facts too.
		const wider = { n_1h: { fn: "count", window: "20h" } };
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: { key: "id", fields: { price: "float" }, history_days: 7, aggregates: wider } }), 200);
		expect(await readAsOf(name, "k", now)).toMatchObject({ n_1h: 4 });
	});
});

describe("tile retention", () => {
	it("the cron drops minute tiles past a day and hour and day tiles past 31 days", async () => {
		const name = uniqueName("tiles");
		const now = Date.now();
		const insert = (res: number, start: number) =>
			env.DB.prepare("INSERT INTO agg_tiles (dataset, key, agg, res, start, cnt, sum, mn, mx) VALUES (?1, 'k', 'a:0', ?2, ?3, 1, 1, 1, 1)")
				.bind(name, res, start)
				.run();
		await insert(MINUTE, now - 30 * HOUR);
		await insert(MINUTE, now - 2 * HOUR);
		await insert(HOUR, now - 32 * DAY);
		await insert(HOUR, now - 20 * DAY);
		await insert(DAY, now - 40 * DAY);
		await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
			createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
			env,
			createExecutionContext(),
		);
		const { results } = await env.DB.prepare("SELECT res, start FROM agg_tiles WHERE dataset = ?1 ORDER BY res, start")
			.bind(name)
			.all<{ res: number; start: number }>();
		expect(results).toEqual([
			{ res: MINUTE, start: now - 2 * HOUR },
			{ res: HOUR, start: now - 20 * DAY },
		]);
	});
});
