/** Hostile review of the read path and the consistency rules: each test here failed before its fix. */
import { describe, expect, it } from "vitest";
import { ServerTiming } from "../../src/observability/timing";
import type { DatasetSpec } from "../../src/registry/spec";
import { CircuitBreaker } from "../../src/serving/breaker";
import { L0Cache } from "../../src/serving/l0";
import { lookupRecords } from "../../src/serving/lookup";
import { TieredReader } from "../../src/serving/reader";
import { RedisTier } from "../../src/serving/redis-tier";
import { TierStats } from "../../src/serving/stats";
import type { Found, RecordRef, Tier } from "../../src/serving/tier";
import { decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { RedisStore } from "../../src/storage/redis";
import {
	call,
	createDataset,
	env,
	eventually,
	expectJson,
	expectProblem,
	getRecord,
	postEvents,
	type RecordBody,
	seedD1,
	uniqueName,
	waitForRecord,
} from "./helpers";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };
const inRedis = async (ds: string, key: string) =>
	decodeRecord((await new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN).getMany([recordCacheKey(ds, key)]))[0]);

describe("values past a bound are refused for the bound, not called malformed", () => {
	it("an int field given a whole number past 2^53 says it is out of the 53-bit range, not that it is no integer", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int" } });
		// As a client's JSON encoder writes a 64-bit id: a whole number JavaScript cannot hold exactly.
		const body = `[{"dataset":"${ds}","key":"a","op":"upsert","value":{"n":9007199254740993}},{"dataset":"${ds}","key":"b","op":"upsert","value":{"n":-9007199254740992}},{"dataset":"${ds}","key":"c","op":"upsert","value":{"n":1.5}},{"dataset":"${ds}","key":"d","op":"upsert","value":{"n":9007199254740991}}]`;
		const res = await expectJson<{ accepted: number; rejected: { index: number; error: string }[] }>(
			await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }),
			202,
		);
		expect(res.accepted).toBe(1);
		for (const r of res.rejected.slice(0, 2)) expect(r.error).toMatch(/^value\.n: .*9007199254740991/);
		expect(res.rejected[2]?.error).toMatch(/^value\.n: expected an integer/);
		expect(res.rejected[2]?.error).not.toMatch(/9007199254740991/);
	});

	it("an event_time of whole epoch ms past what a Date holds is refused as too late, not as not whole", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int" } });
		const res = await postEvents([
			{ dataset: ds, key: "a", op: "upsert", value: { n: 1 }, event_time: 1e20 },
			{ dataset: ds, key: "b", op: "upsert", value: { n: 1 }, event_time: 1.5 },
			{ dataset: ds, key: "c", op: "upsert", value: { n: 1 } },
		]);
		expect(res.accepted).toBe(1);
		expect(res.rejected[0]?.error).not.toMatch(/whole/);
		expect(res.rejected[0]?.error).toMatch(/past the latest time|ahead of the server's clock/);
		expect(res.rejected[1]?.error).toMatch(/whole epoch milliseconds/);
	});
});

describe("X-Hotpath-Tier names every tier an answer came from", () => {
	it("a current read of an aggregate dataset says d1: its aggregates are computed from D1 whichever tier held the fields", async () => {
		const ds = uniqueName("agg");
		await expectJson(
			await call("PUT", `/v1/datasets/${ds}`, { json: { key: "id", fields: { price: "float" }, aggregates: { n: { fn: "count", window: "1h" } } } }),
			201,
		);
		await postEvents([{ dataset: ds, key: "u", op: "patch", value: { price: 2 } }]);
		await waitForRecord(ds, "u");
		// Now the fields are in L0; the aggregates still come from D1, and the headers must say so.
		const res = await getRecord(ds, "u");
		expect(((await res.json()) as { value: Record<string, unknown> }).value).toMatchObject({ price: 2, n: 1 });
		expect(res.headers.get("x-hotpath-tier")?.split(",")).toContain("d1");
		const lookup = await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["u"] }] } });
		await expectJson(lookup, 200);
		expect(lookup.headers.get("x-hotpath-tier")?.split(",")).toContain("d1");
		const gql = await call("POST", "/graphql", { json: { query: `{ ${ds}(keys: ["u"]) { value { price n } } }` } });
		expect(await expectJson(gql, 200)).toEqual({ data: { [ds]: [{ value: { price: 2, n: 1 } }] } });
		expect(gql.headers.get("x-hotpath-tier")?.split(",")).toContain("d1");
	});
});

describe("rebuild: D1 alone refills every tier", () => {
	it("a row edited directly in D1 (its revision unchanged) reaches Redis, L0 and reads after a refill, as the README says", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int" } });
		await postEvents([{ dataset: ds, key: "k", op: "upsert", value: { n: 1 } }]);
		await waitForRecord(ds, "k", (b) => b.value?.n === 1);
		await eventually(async () => ((await inRedis(ds, "k"))?.v?.n === 1 ? true : undefined), { what: "the copy in Redis" });
		expect(((await (await getRecord(ds, "k")).json()) as RecordBody).value).toEqual({ n: 1 });
		// `wrangler d1 execute ... UPDATE records SET value = ...`: the fix an operator makes by hand.
		await env.DB.prepare("UPDATE records SET value = ?1 WHERE dataset = ?2 AND key = ?3")
			.bind(JSON.stringify({ n: 2 }), ds, "k")
			.run();
		await expectJson(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		await eventually(
			async () => ((await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/rebuild`), 200)).status === "done" ? true : undefined),
			{ what: "the rebuild", timeoutMs: 20_000 },
		);
		expect((await inRedis(ds, "k"))?.v).toEqual({ n: 2 });
		// L0 copies revalidate (the refill counts as a change) and take the edited value.
		await eventually(async () => (((await (await getRecord(ds, "k")).json()) as RecordBody).value?.n === 2 ? true : undefined), {
			what: "reads of the edited value",
			timeoutMs: 20_000,
		});
	});
});

describe("Redis's version guard with a refill of what D1 holds", () => {
	it("a fill (or the consumer) of the same revision never replaces a copy; a refill replaces one that differs, never a newer one", async () => {
		const tier = new RedisTier(
			new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN),
			new CircuitBreaker(3, 500),
			1000,
			2,
			1000,
			3600,
		);
		const ds = uniqueName("guard");
		const ck = recordCacheKey(ds, "k");
		const copy = (r: number, n: number) => ({ v: { n }, t: 1000, i: "e", r });
		expect(await tier.write([{ ck, rec: copy(3, 1), ttlSeconds: 60 }])).toBe(1);
		expect(await tier.write([{ ck, rec: copy(3, 2), ttlSeconds: 60 }])).toBe(0);
		expect(await tier.write([{ ck, rec: copy(3, 2), ttlSeconds: 60, dataset: ds }])).toBe(0);
		expect((await inRedis(ds, "k"))?.v).toEqual({ n: 1 });
		expect(await tier.write([{ ck, rec: copy(3, 1), ttlSeconds: 60, dataset: ds, fromD1: true }])).toBe(0); // the same copy: nothing to do
		expect(await tier.write([{ ck, rec: copy(2, 9), ttlSeconds: 60, dataset: ds, fromD1: true }])).toBe(0); // older: never
		expect(await tier.write([{ ck, rec: copy(3, 2), ttlSeconds: 60, dataset: ds, fromD1: true }])).toBe(1);
		expect((await inRedis(ds, "k"))?.v).toEqual({ n: 2 });
	});
});

describe("Server-Timing names every tier a read touched, on a 503 too", () => {
	it("a read no tier could answer (D1 refusing) says which tiers it tried and how long each took", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int" } });
		await seedD1(ds, "cold", { n: 1 });
		await env.DB.prepare("ALTER TABLE records RENAME TO records_away").run();
		try {
			const res = await getRecord(ds, "cold");
			await expectProblem(res, 503);
			const timing = res.headers.get("server-timing") ?? "";
			for (const tier of ["l0", "redis", "kv", "d1"]) expect(timing).toMatch(new RegExp(`(^|, )${tier};dur=`));
			const lookup = await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["cold"] }] } });
			await expectProblem(lookup, 503);
			expect(lookup.headers.get("server-timing") ?? "").toMatch(/(^|, )d1;dur=/);
		} finally {
			await env.DB.prepare("ALTER TABLE records_away RENAME TO records").run();
		}
	});
});

/** A tier that is down: every call fails (the reader's fallback policy is under test, not storage). */
class DownTier implements Tier {
	constructor(
		readonly name: "redis" | "kv" | "d1",
		readonly maxLagMs: number,
	) {}
	available() {
		return true;
	}
	async getMany(_refs: RecordRef[]): Promise<Found> {
		throw new Error(`${this.name} is down`);
	}
	async fill() {}
}

describe("a last-resort copy is served only marked stale", () => {
	it("a tombstone L0 kept is no last resort: when every tier fails, a deleted key is a 503, not a 404 that cannot say it is stale", async () => {
		const spec: DatasetSpec = { name: "ds", key: "id", fields: { x: { type: "int" } }, ttl_seconds: 3600, history_days: 7 };
		const l0 = new L0Cache(10, 10, 10, 10);
		const reader = new TieredReader(l0, [new DownTier("redis", 1000), new DownTier("kv", 60_000), new DownTier("d1", 0)], new TierStats(), {
			redis: 100,
			kv: 100,
			d1: 100,
		});
		const now = Date.now();
		// The key was deleted (a tombstone) 30 s before D1 went down; it may have been written again since.
		l0.set(recordCacheKey("ds", "gone"), { v: null, t: now - 60_000, i: "d", r: 2 }, now - 30_000, now - 30_000);
		l0.set(recordCacheKey("ds", "here"), { v: { x: 1 }, t: now - 60_000, i: "u", r: 1 }, now - 30_000, now - 30_000);
		const ctx = { timing: new ServerTiming(), waitUntil: () => {} };
		const ok = await lookupRecords(reader, [{ spec, keys: ["here"] }], { ifStale: "serve", maxStalenessS: 120 }, ctx);
		expect(ok.results[0]?.records[0]).toMatchObject({ status: "stale", value: { x: 1 } });
		await expect(lookupRecords(reader, [{ spec, keys: ["gone"] }], { ifStale: "serve", maxStalenessS: 120 }, ctx)).rejects.toMatchObject({
			code: "unavailable",
		});
	});
});
