/** The KV tier against local Workers KV: fills are bounded per read and never store negatives. */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { KV_FILL_MAX, KvTier } from "../../src/serving/kv-tier";
import { recordCacheKey } from "../../src/storage/cached-record";

it("fills at most KV_FILL_MAX keys per read (Workers allow 1,000 KV operations per invocation), skipping misses", async () => {
	const kv = (env as unknown as { RECORDS_KV: KVNamespace }).RECORDS_KV;
	const ds = `kvfill_${Date.now().toString(36)}`;
	const entries = Array.from({ length: KV_FILL_MAX + 50 }, (_, i) => {
		const ck = recordCacheKey(ds, `k${i}`);
		return { ref: { dataset: ds, key: `k${i}`, ck }, rec: { v: { i }, t: 1, i: "e", r: i % 10 === 0 ? 0 : 1 } };
	});
	await new KvTier(kv, 60_000).fill(entries);
	const listed = await kv.list({ prefix: `r:${ds}:` });
	expect(listed.keys.length).toBe(KV_FILL_MAX);
	// Negative entries (r = 0) never reach KV.
	expect(listed.keys.some((k) => k.name === recordCacheKey(ds, "k0"))).toBe(false);
});
