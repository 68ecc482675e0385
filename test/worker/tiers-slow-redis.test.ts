/**
 * The read path's tiers when Redis is slow (answers, but past REDIS_TIMEOUT_MS): what the breaker
 * learns from calls that are not reads. Each case failed before its fix.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { servicesFor } from "../../src/services";
import { createDataset, EVENTS_QUEUE, env, eventsBody, message, runQueue, sleep, uniqueName, userSpec } from "./helpers";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };

/** Holds the real Redis busy for about `ms` (a Lua loop: every other command waits its turn). */
function busyRedis(ms: number): Promise<unknown> {
	const script = `local e = redis.call('TIME'); local s = e[1] * 1000000 + e[2]; repeat local n = redis.call('TIME') until (n[1] * 1000000 + n[2]) - s >= tonumber(ARGV[1]) * 1000; return 1`;
	return fetch(redisEnv.UPSTASH_REDIS_REST_URL, {
		method: "POST",
		headers: { authorization: `Bearer ${redisEnv.UPSTASH_REDIS_REST_TOKEN}` },
		body: JSON.stringify(["EVAL", script, "0", String(ms)]),
	}).then((r) => r.json());
}

let ds = "";
beforeAll(async () => {
	ds = await createDataset(userSpec(3600));
});

describe("a slow Redis and the read breaker", () => {
	// The breaker keeps reads off a Redis slower than REDIS_TIMEOUT_MS. A write (bounded at 20 times
	// that) or a /healthz ping (4 times) that got through slowly closed it all the same, so under a
	// steady stream of events every consumer batch let reads back at a Redis that times them out,
	// each read paying the full timeout until the breaker opened again.
	it("a write-through that succeeds only after the read timeout does not close an open breaker", async () => {
		const services = servicesFor(env);
		const redis = services.redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		const readTimeout = services.settings.REDIS_TIMEOUT_MS;
		for (let i = 0; i < 5; i++) redis.breaker.failure();
		expect(redis.breaker.state).toBe("open");
		const busy = busyRedis(readTimeout * 2);
		await sleep(50);
		const k = uniqueName("slow");
		const start = Date.now();
		const msg = message(eventsBody([{ id: "v1", dataset: ds, key: k, op: "upsert", value: { age: 1 }, time: Date.now() }]));
		expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
		const took = Date.now() - start;
		await busy;
		// The write did reach Redis, only slower than a read may wait.
		expect(took).toBeGreaterThan(readTimeout);
		expect(redis.breaker.state).not.toBe("closed");
	});

	it("a health probe that answers only after the read timeout does not close it either", async () => {
		const services = servicesFor(env);
		const redis = services.redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		const readTimeout = services.settings.REDIS_TIMEOUT_MS;
		for (let i = 0; i < 5; i++) redis.breaker.failure();
		// Past the cool-down: the probe is let through.
		await sleep(services.settings.REDIS_COOLDOWN_MS + 50);
		const busy = busyRedis(readTimeout * 2);
		await sleep(50);
		await redis.probe();
		await busy;
		expect(redis.breaker.state).not.toBe("closed");
		// Redis answering fast again closes it on the next probe.
		await sleep(services.settings.REDIS_COOLDOWN_MS + 50);
		expect(await redis.probe()).toBe(true);
		expect(redis.breaker.state).toBe("closed");
	});
});
