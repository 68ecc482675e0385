/**
 * /healthz takes no key, so it must not let callers make every backend work on every call: in a
 * cold isolate too, where calls arriving together find no probe to reuse yet. This file's isolate
 * has answered no /healthz before the test.
 */
import { describe, expect, it } from "vitest";
import { servicesFor } from "../../src/services";
import { call, env } from "./helpers";

describe("/healthz in a cold isolate", () => {
	it("probes the backends once for a burst of calls arriving together, and every call gets its answer", async () => {
		const redis = servicesFor(env).redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		let probes = 0;
		const original = redis.probe.bind(redis);
		redis.probe = async () => {
			probes++;
			return original();
		};
		try {
			const all = await Promise.all(Array.from({ length: 20 }, () => call("GET", "/healthz", { key: null })));
			expect(all.map((r) => r.status)).toEqual(Array(20).fill(200));
			const bodies = await Promise.all(all.map((r) => r.json()));
			expect(bodies.every((b) => JSON.stringify(b) === JSON.stringify(bodies[0]))).toBe(true);
			expect(probes).toBe(1);
		} finally {
			redis.probe = original;
		}
	});

	it("is not frozen by a probe that never answers (one lost with its cancelled request): a later call probes again", async () => {
		const redis = servicesFor(env).redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		const original = redis.probe;
		try {
			// Past the reuse of the first test's probe, a probe that never answers.
			await new Promise((r) => setTimeout(r, 2100));
			redis.probe = () => new Promise<boolean>(() => {});
			// workerd cancels that request as hung, and the probe's own cleanup never runs.
			call("GET", "/healthz", { key: null }).catch(() => {});
			await new Promise((r) => setTimeout(r, 50));
			// Redis now answers, and is down.
			redis.probe = async () => false;
			await new Promise((r) => setTimeout(r, 2600));
			const health = await (await call("GET", "/healthz", { key: null })).json<{ tiers: { redis: string } }>();
			expect(health.tiers.redis).toBe("down");
		} finally {
			redis.probe = original;
		}
	});
});
