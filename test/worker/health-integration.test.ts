/** GET /healthz (no auth) and the admin counters at GET /v1/stats. */
import { describe, expect, it } from "vitest";
import { probeHealth } from "../../src/routes/health";
import { servicesFor } from "../../src/services";
import { call, createDataset, env, expectJson, expectProblem, getRecord, seedD1, uniqueName, userSpec } from "./helpers";

interface Health {
	status: string;
	tiers: Record<string, string>;
}

describe("GET /healthz", () => {
	describe("happy", () => {
		it("answers {status, tiers: {l0, redis, kv, d1}} with nothing else, without auth", async () => {
			const res = await call("GET", "/healthz", { key: null });
			const body = await expectJson<Health>(res, 200);
			expect(Object.keys(body).sort()).toEqual(["status", "tiers"]);
			expect(Object.keys(body.tiers).sort()).toEqual(["d1", "kv", "l0", "redis"]);
			for (const state of Object.values(body.tiers)) expect(["up", "down", "off"]).toContain(state);
			expect(body.tiers.l0).toBe("up");
			expect(body.tiers.kv).toBe("up");
			expect(body.tiers.d1).toBe("up");
			// "off" when no UPSTASH_REDIS_REST_URL/TOKEN are set; "up" when the test config provides the local endpoint.
			expect(["up", "off"]).toContain(body.tiers.redis);
			expect(body.status).toBe("ok");
		});

		it("is degraded, with redis down, while Redis's breaker is open; ok again once a probe succeeds", async () => {
			const services = servicesFor(env);
			const redis = services.redis;
			if (!redis) throw new Error("the test config provides the hot tier");
			for (let i = 0; i < 3; i++) redis.breaker.failure();
			expect(await probeHealth(services)).toEqual({ status: "degraded", tiers: { l0: "up", redis: "down", kv: "up", d1: "up" } });
			// After the cool-down (REDIS_COOLDOWN_MS, 500 ms in tests) the health probe is the breaker's probe, and closes it.
			await new Promise((r) => setTimeout(r, 600));
			expect(await probeHealth(services)).toEqual({ status: "ok", tiers: { l0: "up", redis: "up", kv: "up", d1: "up" } });
		});

		it("is never cached", async () => {
			const res = await call("GET", "/healthz", { key: null });
			expect(res.headers.get("cache-control")).toBe("no-store");
			await res.body?.cancel();
		});

		it("ignores an Authorization header, even a bad one", async () => {
			expect((await call("GET", "/healthz", { key: "not-a-key" })).status).toBe(200);
		});
	});

	describe("error", () => {
		it.each(["POST", "PUT", "DELETE", "PATCH"])("%s /healthz -> 4xx problem", async (method) => {
			const res = await call(method, "/healthz", { key: null });
			expect(res.status).toBeGreaterThanOrEqual(400);
			expect(res.status).toBeLessThan(500);
			await expectProblem(res, res.status);
		});
	});
});

describe("GET /v1/stats", () => {
	it("counts per-tier hits and misses of this isolate, and shows the L0 bounds", async () => {
		type Stats = {
			since: string;
			scope: string;
			tiers: Record<"l0" | "redis" | "kv" | "d1", { hits: number; misses: number; errors: number; skipped: number }>;
			l0: { entries: number; max_entries: number; ttl_seconds: number; fast_lane_hits: number };
		};
		const before = await expectJson<Stats>(await call("GET", "/v1/stats"), 200);
		expect(Object.keys(before.tiers).sort()).toEqual(["d1", "kv", "l0", "redis"]);
		expect(before.l0).toEqual({ entries: expect.any(Number), max_entries: 10_000, ttl_seconds: 5, fast_lane_hits: expect.any(Number) });
		expect(Number.isNaN(Date.parse(before.since))).toBe(false);

		const ds = await createDataset(userSpec());
		const k = uniqueName("k");
		await seedD1(ds, k, { age: 1 });
		expect((await getRecord(ds, k)).headers.get("x-hotpath-tier")).toBe("d1");
		expect((await getRecord(ds, k)).headers.get("x-hotpath-tier")).toBe("l0");
		const after = await expectJson<Stats>(await call("GET", "/v1/stats"), 200);
		expect(after.tiers.d1.hits).toBeGreaterThanOrEqual(before.tiers.d1.hits + 1);
		expect(after.tiers.l0.hits).toBeGreaterThanOrEqual(before.tiers.l0.hits + 1);
		expect(after.tiers.l0.misses).toBeGreaterThanOrEqual(before.tiers.l0.misses + 1);
		expect(after.l0.entries).toBeGreaterThanOrEqual(1);
		// The second read was a plain read of a fresh L0 copy: the fast lane answered it.
		expect(after.l0.fast_lane_hits).toBeGreaterThanOrEqual(before.l0.fast_lane_hits + 1);
	});
});
