/** L2: Workers KV. Bulk reads; write-back of records found in D1 (never negatives: KV's minimum TTL is 60 s). */
import { decodeRecord, encodeRecord } from "../storage/cached-record";
import { kvGetMany } from "../storage/kv";
import type { FillEntry, Found, RecordRef, Tier } from "./tier";

/** Most KV puts one read's fill makes. */
export const KV_FILL_MAX = 200;

/** KV refuses expiration TTLs under 60 s. */
export const KV_MIN_TTL_SECONDS = 60;

export class KvTier implements Tier {
	readonly name = "kv" as const;
	/**
	 * Lifetime of a copy a read puts in KV. The consumer refreshes only the copies it sees KV
	 * holding, and KV is eventually consistent, so it can miss one put elsewhere moments ago; such a
	 * copy must not outlive the lag KV is allowed (KV_MAX_LAG_SECONDS, at least KV's minimum TTL).
	 */
	readonly fillTtlSeconds: number;

	constructor(
		private readonly kv: KVNamespace,
		readonly maxLagMs: number,
	) {
		this.fillTtlSeconds = Math.max(KV_MIN_TTL_SECONDS, Math.floor(maxLagMs / 1000));
	}

	available(): boolean {
		return true;
	}

	async getMany(refs: RecordRef[]): Promise<Found> {
		const raw = await kvGetMany(
			this.kv,
			refs.map((r) => r.ck),
		);
		const out: Found = new Map();
		for (const [ck, s] of raw) {
			const rec = decodeRecord(s);
			if (rec) out.set(ck, rec);
		}
		return out;
	}

	/**
	 * Read-path fills only write keys KV was just seen not to hold, so they cannot replace a newer
	 * copy except in a race with the consumer's write-through (KV has no compare-and-set); the fill
	 * TTL bounds how long a copy that lost that race can last. Tombstones are kept so a read of a
	 * deleted key stops here.
	 */
	async fill(entries: FillEntry[]): Promise<void> {
		// Workers allow 1,000 KV operations per invocation; a large lookup that missed everywhere fills
		// only its first KV_FILL_MAX keys, and the rest fill on later reads.
		const puts = entries.filter((e) => e.rec.r > 0).slice(0, KV_FILL_MAX);
		await Promise.all(puts.map((e) => this.kv.put(e.ref.ck, encodeRecord(e.rec), { expirationTtl: this.fillTtlSeconds })));
	}
}
