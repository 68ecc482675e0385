/**
 * The KV tier against local Workers KV: fills and write-through stay within the KV operations an
 * invocation may spend, and every copy expires within the lag KV is allowed.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { writeThroughKv } from "../../src/ingest/cache-refresh";
import { KV_FILL_MAX, KvTier } from "../../src/serving/kv-tier";
import { recordCacheKey } from "../../src/storage/cached-record";

it("fills at most KV_FILL_MAX keys per read (Workers allow 1,000 KV operations per invocation), skipping misses", async () => {
	const kv = (env as unknown as { RECORDS_KV: KVNamespace }).RECORDS_KV;
	const ds = `kvfill_${Date.now().toString(36)}`;
	const entries = Array.from({ length: KV_FILL_MAX + 50 }, (_, i) => {
		const ck = recordCacheKey(ds, `k${i}`);
		return { ref: { dataset: ds, key: `k${i}`, ck }, rec: { v: { i }, t: 1, i: "e", r: i % 10 === 0 ? 0 : 1 }, ttlSeconds: 86_400 };
	});
	await new KvTier(kv, 60_000).fill(entries);
	const listed = await kv.list({ prefix: `r:${ds}:` });
	expect(listed.keys.length).toBe(KV_FILL_MAX);
	// Negative entries (r = 0) never reach KV.
	expect(listed.keys.some((k) => k.name === recordCacheKey(ds, "k0"))).toBe(false);
});

it("a read's fill lives no longer than KV's allowed lag (KV_MAX_LAG_SECONDS, at least KV's 60 s minimum), whatever the dataset's ttl", async () => {
	const kv = (env as unknown as { RECORDS_KV: KVNamespace }).RECORDS_KV;
	const ds = `kvttl_${Date.now().toString(36)}`;
	const ck = recordCacheKey(ds, "k");
	const before = Date.now();
	await new KvTier(kv, 60_000).fill([{ ref: { dataset: ds, key: "k", ck }, rec: { v: { a: 1 }, t: 1, i: "e", r: 1 }, ttlSeconds: 86_400 }]);
	const [listed] = (await kv.list({ prefix: ck })).keys;
	// Expiration is in whole seconds since the epoch.
	expect(listed?.expiration).toBeGreaterThanOrEqual(Math.floor(before / 1000) + 59);
	expect(listed?.expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 61);
	// A lag below KV's minimum TTL is raised to it; a larger one is used as is.
	expect(new KvTier(kv, 10_000).fillTtlSeconds).toBe(60);
	expect(new KvTier(kv, 300_000).fillTtlSeconds).toBe(300);
});

describe("writeThroughKv", () => {
	const kv = () => (env as unknown as { RECORDS_KV: KVNamespace }).RECORDS_KV;
	const copy = (r: number) => JSON.stringify({ r, t: 1, i: "e", v: { r } });

	it("refreshes held, older copies within its KV-operation budget and hands back the rest", async () => {
		const ds = `kvwt_${Date.now().toString(36)}`;
		const entries = Array.from({ length: 30 }, (_, i) => ({
			dataset: ds,
			key: `k${i}`,
			ck: recordCacheKey(ds, `k${i}`),
			rec: { v: { r: 2 }, t: 2, i: "e2", r: 2 },
		}));
		// KV holds 20 of them at revision 1; 10 are not held and must stay out of KV.
		for (const e of entries.slice(0, 20)) await kv().put(e.ck, copy(1));
		// 1 bulk get + 11 puts = 12 operations.
		const { written, deferred } = await writeThroughKv(kv(), entries, 60, 12);
		expect(written).toBe(11);
		expect(deferred.map((e) => e.ck)).toEqual(entries.slice(11, 20).map((e) => e.ck));
		for (const e of entries.slice(0, 11)) expect(JSON.parse((await kv().get(e.ck)) ?? "null").r).toBe(2);
		// The refreshed copies expire too: a refresh the consumer misses elsewhere cannot outlive KV's allowed lag.
		const listed = (await kv().list({ prefix: `r:${ds}:` })).keys.filter((k) => entries.slice(0, 11).some((e) => e.ck === k.name));
		expect(listed.every((k) => k.expiration !== undefined && k.expiration <= Math.ceil(Date.now() / 1000) + 61)).toBe(true);
		for (const e of entries.slice(11, 20)) expect(JSON.parse((await kv().get(e.ck)) ?? "null").r).toBe(1);
		for (const e of entries.slice(20)) expect(await kv().get(e.ck)).toBeNull();
	});

	it("does not even look up keys past what the budget's bulk gets can check", async () => {
		const ds = `kvwt2_${Date.now().toString(36)}`;
		const entries = Array.from({ length: 250 }, (_, i) => ({
			dataset: ds,
			key: `k${i}`,
			ck: recordCacheKey(ds, `k${i}`),
			rec: { v: null, t: 2, i: "e2", r: 2 },
		}));
		// A budget of 4: 2 bulk gets (200 keys), 2 puts; the last 50 keys are handed back unchecked.
		const { deferred } = await writeThroughKv(kv(), entries, 60, 4);
		expect(deferred.map((e) => e.ck)).toEqual(entries.slice(200).map((e) => e.ck));
	});
});

describe("a KV refresh while KV refuses", () => {
	it("comes back until every KV copy it could put right has expired (its fill TTL), then stops: a long KV outage is not asked again every second", async () => {
		const { createDataset, applyDirect, recordingQueue, uniqueName } = await import("./helpers");
		const { refreshCaches } = await import("../../src/ingest/cache-refresh");
		const { servicesFor } = await import("../../src/services");
		const real = env as unknown as Env;
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		const key = uniqueName("kvdown");
		await applyDirect([{ id: "e1", dataset: ds, key, op: "upsert", value: { a: 1 }, time: Date.now() }]);
		const down = () => Promise.reject(new Error("KV is down (the test)"));
		const kv = new Proxy(real.RECORDS_KV, {
			get(target, prop) {
				if (prop === "get" || prop === "put" || prop === "getWithMetadata") return down;
				const v = Reflect.get(target, prop);
				return typeof v === "function" ? v.bind(target) : v;
			},
		});
		// The real queue, with each refresh it is sent noted.
		const { queue, sent } = recordingQueue<{ tiers: string[]; until?: number }>(real.EVENTS_QUEUE);
		const services = servicesFor({ ...real, RECORDS_KV: kv, EVENTS_QUEUE: queue });
		try {
			const refs = [{ dataset: ds, key }];
			const before = Date.now();
			// A refresh message as an older consumer sent it (no bound): this attempt sets one.
			await refreshCaches(services, [], [{ refs, tiers: ["kv"] }]);
			expect(sent).toHaveLength(1);
			const until = sent[0]?.until ?? Number.NaN;
			expect(sent[0]?.tiers).toEqual(["kv"]);
			expect(until).toBeGreaterThanOrEqual(before + services.kv.fillTtlSeconds * 1000);
			expect(until).toBeLessThanOrEqual(Date.now() + services.kv.fillTtlSeconds * 1000);
			// Its retries keep that bound rather than pushing it back each time.
			sent.length = 0;
			await refreshCaches(services, [], [{ refs, tiers: ["kv"], until }]);
			expect(sent.map((m) => m.until)).toEqual([until]);
			// Past it, nothing is queued again.
			sent.length = 0;
			await refreshCaches(services, [], [{ refs, tiers: ["kv"], until: Date.now() - 1 }]);
			expect(sent).toEqual([]);
		} finally {
			servicesFor(real);
		}
	});
});
