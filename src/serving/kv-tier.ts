/** L2: Workers KV. Bulk reads; write-back of records found in D1 (never negatives: KV's minimum TTL is 60 s). */
import { type CachedRecord, decodeRecord, encodeRecord } from "../storage/cached-record";
import { kvGetMany } from "../storage/kv";
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
 * Write-through from the consumer: refreshes the copies KV holds, each key once per batch (KV
 * allows one write per second per key), skipping keys where KV already holds the same or a newer
 * revision. Keys KV does not hold are left to read fills: writing every changed key would cost a
 * KV write (and a subrequest) per event for keys that may never be read at the edge, and KV
 * holding nothing is as consistent as KV holding D1's value.
 */
export async function writeThroughKv(kv: KVNamespace, entries: { ck: string; rec: CachedRecord }[]): Promise<number> {
	if (!entries.length) return 0;
	const held = await kvGetMany(
		kv,
		entries.map((e) => e.ck),
	);
	const toWrite = entries.filter((e) => {
		const r = decodeRecord(held.get(e.ck))?.r;
		return r !== undefined && r < e.rec.r;
	});
	await Promise.all(toWrite.map((e) => kv.put(e.ck, encodeRecord(e.rec))));
	return toWrite.length;
}
