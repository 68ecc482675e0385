/**
 * The cache-first read path: L0, then each lower tier in order (Redis, KV, D1), one round trip
 * per tier for the whole batch. Misses fill the tiers above in the background; concurrent misses
 * for one key share one load; a tier that errors or times out is skipped.
 *
 * Provenance: every answer carries `syncedAt`, when its source was last known to match D1 (the
 * moment a tier was asked, less that tier's worst-case lag). L0 keeps it with the copy, and a tier
 * is filled only from an answer that lags no more than that tier may (Redis never from KV).
 *
 * Single flight without shared promises: workerd may resume a request that awaits a promise
 * another request settles in that other request's I/O context. So a request that finds a key
 * already loading waits on its own timer until the loader has put the answer in L0.
 */
import { log } from "../observability/log";
import { ServerTiming } from "../observability/timing";
import type { CachedRecord } from "../storage/cached-record";
import { timeout } from "../timeout";
import type { L0Cache } from "./l0";
import type { TierStats } from "./stats";
import type { RecordRef, Tier, TierName } from "./tier";

export interface LookupRef extends RecordRef {
	/** How far behind D1 a copy may be for this read, in ms: tiers and copies that may lag more are skipped. */
	maxLagMs: number;
	/** How far behind D1 a last-resort copy may be when every tier fails (the request's max_staleness), if at all. */
	fallbackMaxLagMs?: number;
	/** Cache TTL for fills, from the dataset's ttl_seconds. */
	ttlSeconds: number;
}

export interface Resolved {
	rec: CachedRecord;
	tier: TierName;
	/** When the answering copy's source was last known to match D1. */
	syncedAt: number;
	/** Served from a last-resort copy because every tier below failed; always reported stale. */
	fallback?: boolean;
}

export interface ReadContext {
	timing: ServerTiming;
	waitUntil(p: Promise<unknown>): void;
}

interface Answer {
	tierIndex: number;
	ref: LookupRef;
	rec: CachedRecord;
	syncedAt: number;
	/** Bit i set: tier i was asked for this key and answered that it does not hold it. */
	missedIn: number;
}

export class TieredReader {
	/**
	 * Keys being loaded below L0 in this isolate, by `ck|maxLagMs`, with when the load began. A lease,
	 * not a flag: a request that is cancelled while it loads (its client went away) never resumes, so
	 * its load never clears its keys. A load older than every tier's timeout together is abandoned,
	 * and the next request takes it over instead of waiting that long again, on every miss, for the
	 * isolate's life.
	 */
	private readonly inflight = new Map<string, number>();
	/** Keys being revalidated in the background. */
	private readonly revalidating = new Set<string>();

	constructor(
		readonly l0: L0Cache,
		readonly tiers: readonly Tier[],
		private readonly stats: TierStats,
		private readonly timeoutsMs: Record<Exclude<TierName, "l0">, number>,
	) {}

	/**
	 * Resolves every ref. Keys no tier could answer are absent from the result (the caller
	 * turns that into a 503); a key that does not exist resolves to a record with r = 0.
	 */
	async lookup(refs: LookupRef[], ctx: ReadContext): Promise<Map<string, Resolved>> {
		const now = Date.now();
		const l0Start = performance.now();
		this.l0.changes?.poll(now, ctx);
		const out = new Map<string, Resolved>();
		const pending: LookupRef[] = [];
		const revalidate: LookupRef[] = [];
		for (const ref of refs) {
			if (out.has(ref.ck)) continue;
			const hit = this.l0.get(ref.ck, ref.maxLagMs, now);
			if (hit) {
				out.set(ref.ck, { rec: hit.rec, tier: "l0", syncedAt: hit.syncedAt });
				if (hit.state === "revalidate") revalidate.push(ref);
			} else pending.push(ref);
		}
		this.stats.count("l0", "hits", out.size);
		ctx.timing.add("l0", performance.now() - l0Start);
		// The refresh runs after the answer: its tier calls are timed apart, not in this request's Server-Timing.
		if (revalidate.length) ctx.waitUntil(this.revalidate(revalidate, { timing: new ServerTiming(), waitUntil: (p) => ctx.waitUntil(p) }));
		if (!pending.length) return out;
		this.stats.count("l0", "misses", pending.length);

		// Single flight: a key already being loaded in this isolate waits for that load.
		const mine: LookupRef[] = [];
		const waiting: LookupRef[] = [];
		const startedAt = Date.now();
		for (const ref of pending) {
			const flightKey = `${ref.ck}|${ref.maxLagMs}`;
			if (this.loading(flightKey, startedAt)) waiting.push(ref);
			else {
				this.inflight.set(flightKey, startedAt);
				mine.push(ref);
			}
		}
		const [loaded, leftovers] = await Promise.all([
			mine.length ? this.loadOwned(mine, ctx, startedAt) : new Map<string, Resolved>(),
			waiting.length ? this.waitForOthers(waiting, out) : [],
		]);
		for (const [ck, r] of loaded) out.set(ck, r);
		// A loader that failed leaves nothing in L0: load those keys here.
		if (leftovers.length) for (const [ck, r] of await this.loadBelowL0(leftovers, ctx)) out.set(ck, r);
		return out;
	}

	/** How long a load may take before it is taken for abandoned: every tier's timeout, one after another. */
	private get leaseMs(): number {
		return this.timeoutsMs.redis + this.timeoutsMs.kv + this.timeoutsMs.d1;
	}

	/** Whether another request's load of this key is under way (begun within its lease). */
	private loading(flightKey: string, now: number): boolean {
		const since = this.inflight.get(flightKey);
		return since !== undefined && now - since < this.leaseMs;
	}

	private async loadOwned(refs: LookupRef[], ctx: ReadContext, startedAt: number): Promise<Map<string, Resolved>> {
		try {
			return await this.loadBelowL0(refs, ctx);
		} finally {
			for (const ref of refs) {
				const flightKey = `${ref.ck}|${ref.maxLagMs}`;
				// A load that outlived its lease may have been taken over: leave the new one's entry.
				if (this.inflight.get(flightKey) === startedAt) this.inflight.delete(flightKey);
			}
		}
	}

	/** Polls L0 on this request's own timer until other loads finish. Returns the refs they did not answer. */
	private async waitForOthers(refs: LookupRef[], out: Map<string, Resolved>): Promise<LookupRef[]> {
		const deadline = Date.now() + this.leaseMs;
		let left = refs;
		while (left.length && Date.now() < deadline) {
			await new Promise((r) => setTimeout(r, 1));
			const now = Date.now();
			left = left.filter((ref) => {
				if (this.loading(`${ref.ck}|${ref.maxLagMs}`, now)) return true;
				const hit = this.l0.get(ref.ck, ref.maxLagMs, now);
				if (hit) out.set(ref.ck, { rec: hit.rec, tier: "l0", syncedAt: hit.syncedAt });
				return false;
			});
		}
		return refs.filter((ref) => !out.has(ref.ck));
	}

	/** Walks the tiers below L0 for `refs`, then schedules fills of the tiers above each answer. */
	private async loadBelowL0(refs: LookupRef[], ctx: ReadContext): Promise<Map<string, Resolved>> {
		const out = new Map<string, Resolved>();
		let pending = refs;
		const answers: Answer[] = [];
		// Per key, the tiers that were asked and answered without it: the only ones a fill may write.
		// A tier the read skipped (it lags more than the read allows, or its breaker is open) or that
		// failed was not seen to lack the key, and a read must not cost it a write: a read with
		// max_staleness=0 would otherwise put to KV (one write per key per second) on every request.
		const missedIn = new Map<string, number>();
		for (let i = 0; i < this.tiers.length && pending.length; i++) {
			const tier = this.tiers[i] as Tier;
			// Eligibility first: available() may hand out the breaker's single half-open probe.
			const eligible = pending.filter((r) => r.maxLagMs >= tier.maxLagMs);
			const asked = eligible.length && tier.available() ? eligible : [];
			if (asked.length < pending.length) this.stats.count(tier.name, "skipped", pending.length - asked.length);
			if (!asked.length) continue;
			// What the tier answers matched D1 at the latest this long before it was asked.
			const syncedAt = Date.now() - tier.maxLagMs;
			let found: Map<string, CachedRecord>;
			try {
				found = await ctx.timing.measure(tier.name, () => timeout(tier.getMany(asked), this.timeoutsMs[tier.name], tier.name));
			} catch (e) {
				this.stats.count(tier.name, "errors");
				log.warn("tier read failed", { tier: tier.name, error: String(e) });
				continue;
			}
			const rest: LookupRef[] = [];
			const askedNow = asked.length === pending.length ? null : new Set(asked);
			for (const ref of pending) {
				const rec = found.get(ref.ck);
				if (rec) {
					out.set(ref.ck, { rec, tier: tier.name, syncedAt });
					answers.push({ tierIndex: i, ref, rec, syncedAt, missedIn: missedIn.get(ref.ck) ?? 0 });
				} else {
					rest.push(ref);
					if (!askedNow || askedNow.has(ref)) missedIn.set(ref.ck, (missedIn.get(ref.ck) ?? 0) | (1 << i));
				}
			}
			this.stats.count(tier.name, "hits", pending.length - rest.length);
			this.stats.count(tier.name, "misses", asked.length - (pending.length - rest.length));
			pending = rest;
		}

		// Every tier failed for these: a last-resort copy is allowed only within the request's max_staleness.
		const now = Date.now();
		for (const ref of pending) {
			const copy = this.l0.lastResort(ref.ck);
			if (copy && ref.fallbackMaxLagMs !== undefined && now - copy.syncedAt <= ref.fallbackMaxLagMs) {
				out.set(ref.ck, { rec: copy.rec, tier: "l0", syncedAt: copy.syncedAt, fallback: true });
			}
		}

		if (answers.length) {
			const changes = this.l0.changes;
			// Only copies from tiers the counters cover (Redis, D1) take a ref. KV has no compare-and-set:
			// a fill that lost a race with the consumer holds a revision older than KV's lag says, and a
			// ref from a snapshot taken after that change would confirm it for as long as a Redis copy lives.
			for (const a of answers) {
				const covered = changes && (this.tiers[a.tierIndex] as Tier).maxLagMs <= changes.redisMaxLagMs;
				this.l0.set(a.ref.ck, a.rec, now, a.syncedAt, covered ? changes.refFor(a.ref.dataset, a.ref.ck, a.syncedAt) : undefined);
			}
			ctx.waitUntil(this.fillUpperTiers(answers));
		}
		return out;
	}

	/**
	 * Fills each tier above an answer's tier that was asked for the key and did not hold it, unless
	 * the answer may lag more than that tier is allowed to.
	 */
	private async fillUpperTiers(answers: Answer[]): Promise<void> {
		await Promise.all(
			this.tiers.map(async (tier, i) => {
				const entries = answers
					.filter((a) => a.tierIndex > i && a.missedIn & (1 << i) && (this.tiers[a.tierIndex] as Tier).maxLagMs <= tier.maxLagMs)
					.map((a) => ({ ref: a.ref, rec: a.rec, ttlSeconds: a.ref.ttlSeconds }));
				if (!entries.length || !tier.available()) return;
				try {
					await timeout(tier.fill(entries), this.timeoutsMs[tier.name] * 4, `${tier.name} fill`);
				} catch (e) {
					this.stats.count(tier.name, "errors");
					log.warn("tier fill failed", { tier: tier.name, error: String(e) });
				}
			}),
		);
	}

	/** Stale-while-revalidate: reloads L0 entries past their fresh time, once per key at a time. */
	private async revalidate(refs: LookupRef[], ctx: ReadContext): Promise<void> {
		const mine = refs.filter((r) => !this.revalidating.has(r.ck));
		if (!mine.length) return;
		for (const r of mine) this.revalidating.add(r.ck);
		try {
			await this.loadBelowL0(mine, ctx);
		} finally {
			for (const r of mine) this.revalidating.delete(r.ck);
		}
	}
}
