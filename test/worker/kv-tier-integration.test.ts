/** The KV tier against local Workers KV: fills and write-through stay within the KV operations an invocation may spend. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { KV_FILL_MAX, KvTier, writeThroughKv } from "../../src/serving/kv-tier";
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

describe("writeThroughKv", () => {
	const kv = () => (env as unknown as { RECORDS_KV: KVNamespace }).RECORDS_KV;
	const copy = (r: number) => JSON.stringify({ r, t: 1, i: "e", v: { r } });

	it("refreshes held, older copies within its KV-operation budget and hands back the rest", async () => {
		const ds = `kvwt_${Date.now().toString(36)}`;
		const entries = Array.from({ length: 30 }, (_, i) => ({ ck: recordCacheKey(ds, `k${i}`), rec: { v: { r: 2 }, t: 2, i: "e2", r: 2 } }));
		// KV holds 20 of them at revision 1; 10 are not held and must stay out of KV.
		for (const e of entries.slice(0, 20)) await kv().put(e.ck, copy(1));
		// 1 bulk get + 11 puts = 12 operations.
		const { written, deferred } = await writeThroughKv(kv(), entries, 12);
		expect(written).toBe(11);
		expect(deferred.map((e) => e.ck)).toEqual(entries.slice(11, 20).map((e) => e.ck));
		for (const e of entries.slice(0, 11)) expect(JSON.parse((await kv().get(e.ck)) ?? "null").r).toBe(2);
		for (const e of entries.slice(11, 20)) expect(JSON.parse((await kv().get(e.ck)) ?? "null").r).toBe(1);
		for (const e of entries.slice(20)) expect(await kv().get(e.ck)).toBeNull();
	});

	it("does not even look up keys past what the budget's bulk gets can check", async () => {
		const ds = `kvwt2_${Date.now().toString(36)}`;
		const entries = Array.from({ length: 250 }, (_, i) => ({ ck: recordCacheKey(ds, `k${i}`), rec: { v: null, t: 2, i: "e2", r: 2 } }));
		// A budget of 4: 2 bulk gets (200 keys), 2 puts; the last 50 keys are handed back unchecked.
		const { deferred } = await writeThroughKv(kv(), entries, 4);
		expect(deferred.map((e) => e.ck)).toEqual(entries.slice(200).map((e) => e.ck));
	});
});
