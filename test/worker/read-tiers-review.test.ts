/**
 * The read path's tiers under a hostile review: what a tier that holds garbage, lags, or was
 * written out of order does to a read. Each case failed before its fix.
 */
import { Redis } from "@upstash/redis/cloudflare";
import { beforeAll, describe, expect, it } from "vitest";
import { ServerTiming } from "../../src/observability/timing";
import { servicesFor } from "../../src/services";
import { changeCounterKey } from "../../src/serving/changes";
import { D1Tier } from "../../src/serving/d1-tier";
import { L0Cache } from "../../src/serving/l0";
import { type LookupRef, TieredReader } from "../../src/serving/reader";
import { TierStats } from "../../src/serving/stats";
import { decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { RedisStore } from "../../src/storage/redis";
import {
	call,
	createDataset,
	d1Record,
	EVENTS_QUEUE,
	env,
	eventsBody,
	eventually,
	expectJson,
	getRecord,
	message,
	type RecordBody,
	runQueue,
	seedD1,
	settle,
	sleep,
	uniqueName,
	userSpec,
} from "./helpers";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };
const rawRedis = () =>
	new Redis({ url: redisEnv.UPSTASH_REDIS_REST_URL, token: redisEnv.UPSTASH_REDIS_REST_TOKEN, enableAutoPipelining: false, automaticDeserialization: false });

const inRedis = async (dataset: string, key: string) =>
	decodeRecord((await new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN).getMany([recordCacheKey(dataset, key)]))[0]);

/** One command through the Upstash REST protocol (for CONFIG, which the client has no method for). */
async function redisCommand(...args: string[]): Promise<unknown> {
	const res = await fetch(redisEnv.UPSTASH_REDIS_REST_URL, {
		method: "POST",
		headers: { authorization: `Bearer ${redisEnv.UPSTASH_REDIS_REST_TOKEN}` },
		body: JSON.stringify(args),
	});
	return res.json();
}

/** Polls `read` until `ok` holds of its answer (a read's fill lands in the background). */
async function eventuallyIn<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
	return eventually(async () => {
		const v = await read();
		return ok(v) ? v : undefined;
	});
}

let ds = "";
beforeAll(async () => {
	ds = await createDataset(userSpec(3600));
});

describe("a damaged copy in Redis or KV", () => {
	// Each parsed as JSON with a number r and t, so each was taken for a copy: a value that is no
	// object (or none) failed the response's rendering, and an event time past what a Date holds
	// failed the freshness view, a 500 either way; a negative or fractional revision, an array value
	// or a missing event id were served (stale, with a 1970 event time) instead of D1's record.
	const damaged = [
		'{"r":5,"t":1,"i":"x"}',
		'{"r":5,"t":1,"i":"x","v":"text"}',
		'{"r":5,"t":1,"i":"x","v":5}',
		'{"r":5,"t":1e20,"i":"x","v":{}}',
		'{"r":5,"t":1,"i":"x","v":[1,2]}',
		'{"r":-3,"t":1,"i":"x","v":{"age":1}}',
		'{"r":1.5,"t":1,"i":"x","v":{"age":1}}',
		'{"r":5,"t":1,"v":{"age":1}}',
	];
	for (const [tier, put] of [
		["redis", (ck: string, s: string) => rawRedis().set(ck, s)],
		["kv", (ck: string, s: string) => env.RECORDS_KV.put(ck, s)],
	] as const) {
		it(`in ${tier} is a miss: the read answers D1's record, never a 500`, async () => {
			const keys = damaged.map(() => uniqueName("bad"));
			const t = Date.now() - 1000;
			for (const [i, k] of keys.entries()) {
				await seedD1(ds, k, { age: i }, t, 1);
				await put(recordCacheKey(ds, k), damaged[i] as string);
			}
			servicesFor(env).reader.l0.clear();
			for (const [i, k] of keys.entries()) {
				const res = await getRecord(ds, k, "max_staleness=3600");
				const body = await expectJson<RecordBody>(res, 200);
				expect(body, damaged[i]).toMatchObject({ status: "present", value: { age: i }, event_time: new Date(t).toISOString() });
				expect(res.headers.get("x-hotpath-tier"), damaged[i]).toBe("d1");
			}
			servicesFor(env).reader.l0.clear();
			const res = await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys }], max_staleness: 3600 } });
			const body = await expectJson<{ results: { records: RecordBody[] }[] }>(res, 200);
			expect(body.results[0]?.records.map((r) => r.value)).toEqual(keys.map((_, i) => ({ age: i })));
		});
	}
});

describe("a read fills only the tiers it asked that did not hold the key", () => {
	// A read that skipped KV (its max_staleness is under KV's 60 s lag) still put D1's answer into KV,
	// unasked and unconditionally: with max_staleness=0 (no L0 either), every request for a key was a
	// KV write of it, where production KV takes one write per key per second and the consumer's
	// coalesced write-through is the only writer meant to keep up with changes; and every such
	// request ran Redis's guard script too.
	it("max_staleness=0 reads leave KV's and Redis's copies alone; a read that asked Redis and missed fills it", async () => {
		const k = uniqueName("unasked");
		const ck = recordCacheKey(ds, k);
		await seedD1(ds, k, { age: 1 }, Date.now() - 1000, 1);
		// KV holds D1's copy, as the consumer's write-through left it (the metadata marks that put).
		await env.RECORDS_KV.put(ck, JSON.stringify({ r: 1, t: Date.now() - 1000, i: "seed", v: { age: 1 } }), {
			expirationTtl: 60,
			metadata: { put: "consumer" },
		});
		for (let i = 0; i < 3; i++) {
			const res = await getRecord(ds, k, "max_staleness=0");
			expect(res.headers.get("x-hotpath-tier")).toBe("d1");
			expect(((await res.json()) as RecordBody).value).toEqual({ age: 1 });
		}
		await settle();
		expect((await env.RECORDS_KV.getWithMetadata(ck)).metadata).toEqual({ put: "consumer" });
		expect(await inRedis(ds, k)).toBeNull();

		// max_staleness=10 asks Redis (1 s lag) but not KV: Redis, which missed, is filled; KV is not written.
		servicesFor(env).reader.l0.delete(ck);
		const res = await getRecord(ds, k, "max_staleness=10");
		expect(res.headers.get("x-hotpath-tier")).toBe("d1");
		await res.body?.cancel();
		await settle();
		expect((await inRedis(ds, k))?.r).toBe(1);
		expect((await env.RECORDS_KV.getWithMetadata(ck)).metadata).toEqual({ put: "consumer" });
	});
});

describe("Redis refusing writes while it still answers reads", () => {
	// Over its memory limit (an Upstash database over its data size), Redis refuses the consumer's
	// write of a change but keeps answering reads. The consumer queued a refresh that would fail the
	// same way for as long as that lasted, and meanwhile every reader took the old copy as at most
	// REDIS_MAX_LAG_SECONDS behind D1: max_staleness=1 got the previous value, present.
	it("the consumer drops the copies it could not write over: no reader takes the old one as current", async () => {
		const k = uniqueName("oom");
		// Event times ahead of the clock (within the allowed skew) keep both values young, so only the copy's lag decides.
		const t = Date.now() + 60_000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "v1", dataset: ds, key: k, op: "upsert", value: { age: 1 }, time: t }]))]);
		// A new key reaches Redis through its first read's fill (the consumer only drops a cached miss).
		expect((await getRecord(ds, k)).status).toBe(200);
		await eventuallyIn(
			() => inRedis(ds, k),
			(r) => r?.r === 1,
		);
		expect(await redisCommand("CONFIG", "SET", "maxmemory", "1")).toEqual({ result: "OK" });
		try {
			expect(await redisCommand("SET", uniqueName("probe"), "x")).toMatchObject({ error: expect.stringContaining("OOM") });
			const msg = message(eventsBody([{ id: "v2", dataset: ds, key: k, op: "upsert", value: { age: 2 }, time: t + 1 }]));
			expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
			expect((await d1Record(ds, k))?.rev).toBe(2);
			// The dataset's change counters are gone too: L0 copies elsewhere are no longer confirmed by counts the write never bumped.
			expect(await rawRedis().exists(changeCounterKey(ds))).toBe(0);
			// Another isolate's reader (this one's L0 was refreshed by its own consumer).
			servicesFor(env).reader.l0.delete(recordCacheKey(ds, k));
			const res = await getRecord(ds, k, "max_staleness=1");
			expect((await res.json()) as RecordBody).toMatchObject({ status: "present", value: { age: 2 } });
			expect(res.headers.get("x-hotpath-tier")).toBe("d1");
		} finally {
			await redisCommand("CONFIG", "SET", "maxmemory", "0");
		}
	});
});

describe("a Redis key of the wrong type where a copy should be", () => {
	// A single-key read used GET, which fails on a key holding a hash (WRONGTYPE) where MGET answers
	// nil, and the guard script's GET failed the same way on every fill: every read of that one key
	// counted as a Redis failure, and three opened the breaker, so Redis was skipped for every key
	// this isolate served.
	it("is a miss for that key alone: reads of it never open the breaker", async () => {
		const redis = servicesFor(env).redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		const k = uniqueName("wrongtype");
		await seedD1(ds, k, { age: 3 }, Date.now() - 1000, 1);
		await rawRedis().hset(recordCacheKey(ds, k), { not: "a copy" });
		redis.breaker.success();
		for (let i = 0; i < 5; i++) {
			servicesFor(env).reader.l0.delete(recordCacheKey(ds, k));
			// max_staleness=10 skips KV, so each read asks Redis and then fills it from D1.
			const body = await expectJson<RecordBody>(await getRecord(ds, k, "max_staleness=10"), 200);
			expect(body).toMatchObject({ status: "present", value: { age: 3 } });
			await settle();
		}
		expect(redis.breaker.state).toBe("closed");
		// The fill replaced the foreign key with the copy.
		expect(await inRedis(ds, k)).toMatchObject({ r: 1, v: { age: 3 } });
	});
});

describe("single flight when the loading request never resumes", () => {
	/** A request cancelled during its load (its client went away): the runtime never resumes it, so nothing after its tier call runs. */
	class Cancelled extends ServerTiming {
		override measure<T>(_name: string, _fn: () => Promise<T>): Promise<T> {
			return new Promise<T>(() => {});
		}
	}

	// The key stayed marked as loading for the isolate's life: every later miss of it waited for the
	// whole of every tier's timeout together (7.1 s with the defaults) before loading it itself.
	it("does not hold back later misses of the key past the load's lease", async () => {
		const k = uniqueName("cancel");
		const ck = recordCacheKey(ds, k);
		await seedD1(ds, k, { age: 4 }, Date.now() - 1000, 1);
		const l0 = new L0Cache(100, 5000, 5000, 2000);
		// Timeouts of 100 ms each: a load is taken for abandoned after 300 ms.
		const reader = new TieredReader(l0, [new D1Tier(env.DB)], new TierStats(), { redis: 100, kv: 100, d1: 100 });
		const ref: LookupRef = { dataset: ds, key: k, ck, maxLagMs: Number.POSITIVE_INFINITY, ttlSeconds: 3600 };
		void reader.lookup([ref], { timing: new Cancelled(), waitUntil: () => {} });
		await sleep(400);
		for (let i = 0; i < 3; i++) {
			l0.delete(ck);
			const started = Date.now();
			const got = await reader.lookup([ref], { timing: new ServerTiming(), waitUntil: () => {} });
			expect(got.get(ck)?.rec.v).toEqual({ age: 4 });
			expect(Date.now() - started).toBeLessThan(200);
		}
	});
});
