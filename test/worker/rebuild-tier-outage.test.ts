/**
 * A rebuild through a Redis outage: a page whose Redis writes fail is sent again with a back-off,
 * the run staying running with the failure in its status, and finishes once Redis is back; only a
 * page failing for REBUILD_PAGE_RETRY_MS fails the run. Uses the real Redis of the worker tests,
 * stopped and started through its control server.
 */
import { afterEach, describe, expect, it } from "vitest";
import { REBUILD_PAGE_RETRY_MS } from "../../src/ingest/rebuild";
import { servicesFor } from "../../src/services";
import { decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { startRebuild } from "../../src/storage/rebuilds";
import { RedisStore } from "../../src/storage/redis";
import { EVENTS_QUEUE, env, eventually, runQueue } from "./helpers";
import { datasetWithKeys, REBUILD_KEYS, rebuildKeyOf, rebuildPageMessage, rebuildStatus } from "./rebuilds";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string; REDIS_CONTROL_URL: string };
const redisControl = async (action: "stop" | "start") =>
	expect((await fetch(`${redisEnv.REDIS_CONTROL_URL}/redis/${action}`, { method: "POST" })).status).toBe(204);

let redisStopped = false;
afterEach(async () => {
	if (redisStopped) await redisControl("start");
	redisStopped = false;
});

describe("a rebuild while Redis is down", () => {
	it("keeps running with the failure in its status, retries the page, and finishes once Redis is back", async () => {
		const ds = await datasetWithKeys();
		const job = crypto.randomUUID();
		await startRebuild(env.DB, { dataset: ds, job, mode: "refill", totalKeys: REBUILD_KEYS, startedAt: Date.now() });
		// Down for good as far as this isolate knows: its breaker is open too.
		const redis = servicesFor(env).redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		for (let i = 0; i < 5; i++) redis.breaker.failure();
		await redisControl("stop");
		redisStopped = true;

		// The queue's last retry of the page (attempts 5) used to mark the whole run failed.
		const msg = rebuildPageMessage({ dataset: ds, mode: "refill", job, index: 0, after: null }, 5);
		const result = await runQueue(EVENTS_QUEUE, [msg]);
		expect(result.explicitAcks).toEqual([msg.id]);
		const waiting = await rebuildStatus(ds);
		expect(waiting).toMatchObject({ status: "running", keys_done: 0, pages_done: 0 });
		expect(waiting.error).toMatch(/^page 0 failed 1 time since .*, retrying in 2 s: .*redis/i);
		// Not the whole pipeline the Redis error quotes (hundreds of KB for a page).
		expect(waiting.error?.length).toBeLessThan(1000);

		await redisControl("start");
		redisStopped = false;
		const done = await eventually(
			async () => {
				const s = await rebuildStatus(ds);
				return s.status === "running" ? undefined : s;
			},
			{ what: `rebuild of ${ds} after Redis came back`, timeoutMs: 30_000 },
		);
		expect(done).toMatchObject({ status: "done", keys_done: REBUILD_KEYS, pages_done: 2 });
		expect(done.error).toBeUndefined();
		const inRedis = await new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN).getMany([recordCacheKey(ds, rebuildKeyOf(7))]);
		expect(decodeRecord(inRedis[0])?.v).toEqual({ a: 7 });
	});

	it("fails the run, saying why, once one page has been failing for REBUILD_PAGE_RETRY_MS", async () => {
		const ds = await datasetWithKeys();
		const job = crypto.randomUUID();
		await startRebuild(env.DB, { dataset: ds, job, mode: "refill", totalKeys: REBUILD_KEYS, startedAt: Date.now() - REBUILD_PAGE_RETRY_MS - 60_000 });
		await redisControl("stop");
		redisStopped = true;
		const failingSince = Date.now() - REBUILD_PAGE_RETRY_MS - 1000;
		const msg = rebuildPageMessage({ dataset: ds, mode: "refill", job, index: 0, after: null, failing_since: failingSince, failures: 30 });
		expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
		const failed = await rebuildStatus(ds);
		expect(failed).toMatchObject({ status: "failed", keys_done: 0 });
		expect(failed.error).toMatch(/^page 0 failed 31 times since .* \(last: .*redis.*\); POST the rebuild again once the tier is back$/i);
		expect(failed.error?.length).toBeLessThan(1100);
	});
});
