/**
 * The read path's tiers under a hostile review: what a tier that holds garbage, lags, or was
 * written out of order does to a read. Each case failed before its fix.
 */
import { Redis } from "@upstash/redis/cloudflare";
import { beforeAll, describe, expect, it } from "vitest";
import { servicesFor } from "../../src/services";
import { recordCacheKey } from "../../src/storage/cached-record";
import { call, createDataset, env, expectJson, getRecord, type RecordBody, seedD1, uniqueName, userSpec } from "./helpers";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };
const rawRedis = () =>
	new Redis({ url: redisEnv.UPSTASH_REDIS_REST_URL, token: redisEnv.UPSTASH_REDIS_REST_TOKEN, enableAutoPipelining: false, automaticDeserialization: false });

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
