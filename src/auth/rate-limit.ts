/**
 * Per-key request budgets (`rate_limit: {requests, period_seconds}` on a key). Each isolate keeps a
 * token bucket per limited key: `requests` tokens, refilled evenly over `period_seconds`, so a key
 * may burst up to its budget and then runs at its rate. A refused request learns when the next
 * token arrives (Retry-After).
 *
 * Guarantee: exact within one isolate. Cloudflare runs a worker in many isolates (per location,
 * and in many locations), so the rate a key gets across all of them can exceed its budget. When
 * the Workers Rate Limiting binding KEY_RATE_LIMITER is configured, every limited key is also held
 * to that binding's per-location ceiling, shared by the isolates of a location.
 */
import type { Principal } from "./keys";

interface Bucket {
	tokens: number;
	at: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
	private readonly buckets = new Map<string, Bucket>();

	constructor(
		private readonly binding?: RateLimit,
		private readonly now: () => number = Date.now,
		private readonly maxKeys = 10_000,
	) {}

	/** Takes one request from the principal's budget. Keys without a rate_limit always pass. */
	async take(p: Principal): Promise<RateDecision> {
		const limit = p.rateLimit;
		if (!limit) return { ok: true };
		const now = this.now();
		const rate = limit.requests / (limit.period_seconds * 1000);
		let b = this.buckets.get(p.id);
		if (b) {
			// Kept in order of use, so the bucket dropped past the bound is the least recently used
			// (most likely refilled already), never every key's budget at once.
			this.buckets.delete(p.id);
		} else {
			if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
			b = { tokens: limit.requests, at: now };
		}
		this.buckets.set(p.id, b);
		b.tokens = Math.min(limit.requests, b.tokens + (now - b.at) * rate);
		b.at = now;
		if (b.tokens < 1) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000)) };
		b.tokens -= 1;
		if (this.binding) {
			const { success } = await this.binding.limit({ key: p.id });
			if (!success) return { ok: false, retryAfterSeconds: 10 };
		}
		return { ok: true };
	}
}
