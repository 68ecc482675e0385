/** L3: D1, the truth. One statement per batch; a key it does not hold is a confirmed miss. */
import type { CachedRecord } from "../storage/cached-record";
import { readRecords } from "../storage/records";
import { type Found, NOT_FOUND, type RecordRef, type Tier } from "./tier";

export class D1Tier implements Tier {
	readonly name = "d1" as const;
	readonly maxLagMs = 0;

	constructor(private readonly db: D1Database) {}

	available(): boolean {
		return true;
	}

	async getMany(refs: RecordRef[]): Promise<Found> {
		const rows = await readRecords(this.db, refs);
		const out: Found = new Map();
		for (const ref of refs) out.set(ref.ck, rows.get(ref.ck) ?? NOT_FOUND);
		return out;
	}

	async fill(_entries: { ref: RecordRef; rec: CachedRecord }[]): Promise<void> {
		// D1 is the origin; only the consumer writes it.
	}
}
