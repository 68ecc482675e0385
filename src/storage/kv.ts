/** Workers KV access for cached records: bulk reads of up to 100 keys per call and plain writes. No policy here. */

/** KV's bulk get takes at most 100 keys. */
export const KV_BULK_LIMIT = 100;

/** Reads many keys, one bulk call per 100 keys, all in parallel. */
export async function kvGetMany(kv: KVNamespace, keys: string[]): Promise<Map<string, string | null>> {
	if (keys.length === 1) {
		const k = keys[0] as string;
		return new Map([[k, await kv.get(k, "text")]]);
	}
	if (keys.length <= KV_BULK_LIMIT) return kv.get(keys, "text");
	const chunks: string[][] = [];
	for (let i = 0; i < keys.length; i += KV_BULK_LIMIT) chunks.push(keys.slice(i, i + KV_BULK_LIMIT));
	const maps = await Promise.all(chunks.map((c) => kv.get(c, "text")));
	const out = new Map<string, string | null>();
	for (const m of maps) for (const [k, v] of m) out.set(k, v);
	return out;
}
