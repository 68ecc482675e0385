/** L2: Workers KV. Bulk reads; write-back of records found in D1 (never negatives: KV's minimum TTL is 60 s). */
import { type CachedRecord, decodeRecord, encodeRecord } from "../storage/cached-record";
import { KV_BULK_LIMIT, kvGetMany } from "../storage/kv";
import type { Found, RecordRef, Tier } from "./tier";

/** Most KV puts one read's fill makes. */
export const KV_FILL_MAX = 200;

/** Lifetime of a copy a read put in KV (the consumer's write-through copies do not expire). */
export const KV_FILL_TTL_SECONDS = 3600;

export class KvTier implements Tier {
	readonly name = "kv" as const;

	constructor(
		private readonly kv: KVNamespace,
		readonly maxLagMs: number,
	) {}

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
	 * copy except in a race with the consumer's write-through, which writes the newer revision
	 * again on its next change, and read fills expire after KV_FILL_TTL_SECONDS, which bounds how
	 * long a copy that lost that race can last. Tombstones are kept so a read of a deleted key stops here.
	 */
	async fill(entries: { ref: RecordRef; rec: CachedRecord }[]): Promise<void> {
		// Workers allow 1,000 KV operations per invocation; a large lookup that missed everywhere fills
		// only its first KV_FILL_MAX keys, and the rest fill on later reads.
		const puts = entries.filter((e) => e.rec.r > 0).slice(0, KV_FILL_MAX);
		await Promise.all(puts.map((e) => this.kv.put(e.ref.ck, encodeRecord(e.rec), { expirationTtl: KV_FILL_TTL_SECONDS })));
	}
}

/**
 * KV operations one consumer invocation may spend on write-through. Workers allow 1,000 per
 * invocation (a bulk get of up to 100 keys is one); the rest is headroom.
 */
export const KV_OPS_PER_INVOCATION = 900;

export interface KvRefresh {
	ck: string;
	rec: CachedRecord;
}

/**
 * Write-through from the consumer: refreshes the copies KV holds, each key once per batch (KV
 * allows one write per second per key), skipping keys where KV already holds the same or a newer
 * revision. Keys KV does not hold are left to read fills: writing every changed key would cost a
 * KV write (and a subrequest) per event for keys that may never be read at the edge, and KV
 * holding nothing is as consistent as KV holding D1's value.
 *
 * Spends at most `opsBudget` KV operations. Entries it could not check or write (past the budget,
 * or refused by KV) are returned: the caller must refresh them in a later invocation, because
 * write-through copies do not expire.
 */
export async function writeThroughKv<E extends KvRefresh>(
	kv: KVNamespace,
	entries: E[],
	opsBudget = KV_OPS_PER_INVOCATION,
): Promise<{ written: number; deferred: E[]; failed: number }> {
	if (!entries.length) return { written: 0, deferred: [], failed: 0 };
	// Look up at most half the budget's worth of bulk gets, so puts keep the other half at least.
	const checkable = Math.max(1, Math.floor(opsBudget / 2)) * KV_BULK_LIMIT;
	const checked = entries.slice(0, checkable);
	const deferred = entries.slice(checkable);
	const held = await kvGetMany(
		kv,
		checked.map((e) => e.ck),
	);
	const gets = Math.ceil(checked.length / KV_BULK_LIMIT);
	const stale = checked.filter((e) => {
		const r = decodeRecord(held.get(e.ck))?.r;
		return r !== undefined && r < e.rec.r;
	});
	const puts = Math.max(0, opsBudget - gets);
	const attempted = stale.slice(0, puts);
	// A put KV refuses (e.g. a second write to one key within a second) is handed back like the
	// ones past the budget, rather than failing the whole batch.
	const results = await Promise.allSettled(attempted.map((e) => kv.put(e.ck, encodeRecord(e.rec))));
	const failed = attempted.filter((_, i) => results[i]?.status === "rejected");
	deferred.push(...failed, ...stale.slice(puts));
	return { written: attempted.length - failed.length, deferred, failed: failed.length };
}
