/**
 * The per-isolate token buckets are bounded (10,000 keys). Past the bound, every bucket was
 * dropped at once: one new rate-limited key gave every key in the isolate a full budget again,
 * so a key that had used its budget a moment ago got another burst (the "exact within one
 * isolate" guarantee broke for all of them). Now only the least recently used bucket goes.
 */
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/keys";
import { RateLimiter } from "../../src/auth/rate-limit";

const key = (id: string): Principal => ({
	id,
	name: id,
	scopes: ["read"],
	datasets: null,
	rateLimit: { requests: 1, period_seconds: 3600 },
	expiresAt: null,
});

describe("RateLimiter past its bound of keys", () => {
	it("drops only the least recently used bucket: a key that just used its budget stays refused", async () => {
		let now = 1_000_000;
		const limiter = new RateLimiter(undefined, () => now, 2);
		const [a, b, c] = [key("a"), key("b"), key("c")];
		expect((await limiter.take(a)).ok).toBe(true);
		now += 10;
		expect((await limiter.take(b)).ok).toBe(true);
		now += 10;
		// a is refused, and is now the most recently used.
		expect((await limiter.take(a)).ok).toBe(false);
		now += 10;
		// A third key: one bucket must go, and it is b's (least recently used), not a's.
		expect((await limiter.take(c)).ok).toBe(true);
		now += 10;
		const again = await limiter.take(a);
		expect(again.ok).toBe(false);
		if (!again.ok) expect(again.retryAfterSeconds).toBeGreaterThan(3000);
		expect((await limiter.take(c)).ok).toBe(false);
	});
});
