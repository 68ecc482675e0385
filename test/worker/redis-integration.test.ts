/** The hot tier against a real redis-server, through the real @upstash/redis client and the local endpoint. */
import { env, exports } from "cloudflare:workers";
import { Redis } from "@upstash/redis/cloudflare";
import { describe, expect, it } from "vitest";
import { ServerTiming } from "../../src/observability/timing";
import { CircuitBreaker } from "../../src/serving/breaker";
import { changeBucket } from "../../src/serving/changes";
import { D1Tier } from "../../src/serving/d1-tier";
import { KvTier } from "../../src/serving/kv-tier";
import { L0Cache } from "../../src/serving/l0";
import { type LookupRef, TieredReader } from "../../src/serving/reader";
import { RedisTier } from "../../src/serving/redis-tier";
import { TierStats } from "../../src/serving/stats";
import type { Found, RecordRef, Tier } from "../../src/serving/tier";
import { type CachedRecord, decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { RedisStore } from "../../src/storage/redis";
import { eventually, recordingQueue } from "./helpers";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string; REDIS_CONTROL_URL: string };
const store = () => new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN);
/** Negative entries live 2 s in Redis unless a test needs them to outlast a slow machine. */
const redisTier = (s = store(), negativeTtlS = 2) => new RedisTier(s, new CircuitBreaker(3, 500), 1000, negativeTtlS, 1000, 3600);
let n = 0;
const unique = (p: string) => `${p}_${Date.now().toString(36)}_${n++}`;
const ref = (dataset: string, key: string): LookupRef => ({
	dataset,
	key,
	ck: recordCacheKey(dataset, key),
	maxLagMs: Number.POSITIVE_INFINITY,
	ttlSeconds: 3600,
});
const rec = (r: number, v: Record<string, unknown> | null = { x: r }): CachedRecord => ({ v, t: 1_700_000_000_000 + r, i: `e${r}`, r });

/** Runs background work at once and collects it, so tests can await fills. */
function ctx() {
	const pending: Promise<unknown>[] = [];
	return { timing: new ServerTiming(), waitUntil: (p: Promise<unknown>) => void pending.push(p), settle: () => Promise.all(pending) };
}

/** Counts origin loads; the wrapped tier is the real D1 tier. */
class CountingTier implements Tier {
	calls = 0;
	readonly name;
	readonly maxLagMs;
	constructor(private readonly inner: Tier) {
		this.name = inner.name;
		this.maxLagMs = inner.maxLagMs;
	}
	available() {
		return this.inner.available();
	}
	async getMany(refs: RecordRef[]): Promise<Found> {
		this.calls++;
		return this.inner.getMany(refs);
	}
	fill(entries: { ref: RecordRef; rec: CachedRecord; ttlSeconds: number }[]) {
		return this.inner.fill(entries);
	}
}

async function seedD1(dataset: string, key: string, value: Record<string, unknown>, time = Date.now()) {
	await env.DB.prepare(
		"INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at) VALUES (?1, ?2, ?3, ?4, 'seed', 0, '{}', ?4, 'seed', 1, ?4)",
	)
		.bind(dataset, key, JSON.stringify(value), time)
		.run();
}

describe("Redis tier", () => {
	it("refuses a write older than the copy it holds (version guard)", async () => {
		const tier = redisTier();
		const r = ref(unique("ds"), "k");
		expect(await tier.write([{ ck: r.ck, rec: rec(5), ttlSeconds: 60 }])).toBe(1);
		expect(await tier.write([{ ck: r.ck, rec: rec(4), ttlSeconds: 60 }])).toBe(0);
		expect(await tier.write([{ ck: r.ck, rec: rec(0, null), ttlSeconds: 60 }])).toBe(0);
		expect((await tier.getMany([r])).get(r.ck)).toEqual(rec(5));
		expect(await tier.write([{ ck: r.ck, rec: rec(6), ttlSeconds: 60 }])).toBe(1);
		expect((await tier.getMany([r])).get(r.ck)?.r).toBe(6);
	});

	it("returns values byte for byte without base64: unicode, escapes, emoji, in GET and MGET", async () => {
		const tier = redisTier();
		const ds = unique("ds");
		const value = { s: 'ünïcødé ✓ 😀 "q" \\ \n \u2028 \u0000', n: -0.000123, nested: { k: ["ä", null, true] } };
		const refs = ["a", "b"].map((k) => ref(ds, k));
		await tier.write(refs.map((r, i) => ({ ck: r.ck, rec: rec(i + 1, value), ttlSeconds: 60 })));
		expect((await tier.getMany([refs[0] as LookupRef])).get(refs[0]!.ck)?.v).toEqual(value);
		const both = await tier.getMany(refs);
		for (const r of refs) expect(both.get(r.ck)?.v).toEqual(value);
	});

	it("answers a batch in one MGET and reports misses as absent", async () => {
		const tier = redisTier();
		const ds = unique("ds");
		const refs = ["a", "b", "c"].map((k) => ref(ds, k));
		await tier.write([
			{ ck: refs[0]!.ck, rec: rec(1), ttlSeconds: 60 },
			{ ck: refs[2]!.ck, rec: rec(3), ttlSeconds: 60 },
		]);
		const found = await tier.getMany(refs);
		expect([...found.keys()].sort()).toEqual([refs[0]!.ck, refs[2]!.ck].sort());
	});

	it("serves hits from the expected tier: d1 first, then redis once filled, then l0", async () => {
		const ds = unique("ds");
		await seedD1(ds, "k1", { x: 1 });
		const tier = redisTier();
		const l0 = new L0Cache(100, 5000, 15000, 2000);
		const reader = new TieredReader(l0, [tier, new KvTier(env.RECORDS_KV, 60_000), new D1Tier(env.DB)], new TierStats(), { redis: 1000, kv: 1000, d1: 5000 });
		let c = ctx();
		expect((await reader.lookup([ref(ds, "k1")], c)).get(recordCacheKey(ds, "k1"))?.tier).toBe("d1");
		await c.settle();
		expect(decodeRecord((await store().getMany([recordCacheKey(ds, "k1")]))[0])?.v).toEqual({ x: 1 });
		l0.clear();
		c = ctx();
		expect((await reader.lookup([ref(ds, "k1")], c)).get(recordCacheKey(ds, "k1"))?.tier).toBe("redis");
		expect(c.timing.header).toMatch(/redis;dur=/);
		c = ctx();
		expect((await reader.lookup([ref(ds, "k1")], c)).get(recordCacheKey(ds, "k1"))?.tier).toBe("l0");
	});

	it("makes one origin load for N concurrent misses of one key (single flight)", async () => {
		const ds = unique("ds");
		await seedD1(ds, "hot", { x: 42 });
		const d1 = new CountingTier(new D1Tier(env.DB));
		const reader = new TieredReader(new L0Cache(100, 5000, 15000, 2000), [redisTier(), d1], new TierStats(), { redis: 1000, kv: 1000, d1: 5000 });
		const c = ctx();
		const results = await Promise.all(Array.from({ length: 25 }, () => reader.lookup([ref(ds, "hot")], c)));
		expect(d1.calls).toBe(1);
		for (const r of results) expect(r.get(recordCacheKey(ds, "hot"))?.rec.v).toEqual({ x: 42 });
	});

	it("caches a miss briefly in L0 and Redis, and a write clears it", async () => {
		const ds = unique("ds");
		const d1 = new CountingTier(new D1Tier(env.DB));
		// Negative TTLs of a minute: the test checks where a miss is answered, not when it expires.
		const tier = redisTier(store(), 60);
		const l0 = new L0Cache(100, 5000, 15000, 60_000);
		const reader = new TieredReader(l0, [tier, d1], new TierStats(), { redis: 1000, kv: 1000, d1: 5000 });
		const c = ctx();
		expect((await reader.lookup([ref(ds, "ghost")], c)).get(recordCacheKey(ds, "ghost"))?.rec.r).toBe(0);
		await c.settle();
		expect(decodeRecord((await store().getMany([recordCacheKey(ds, "ghost")]))[0])?.r).toBe(0);
		// A burst of misses does not reach D1 again.
		for (let i = 0; i < 5; i++) await reader.lookup([ref(ds, "ghost")], ctx());
		expect(d1.calls).toBe(1);
		l0.clear();
		expect((await reader.lookup([ref(ds, "ghost")], ctx())).get(recordCacheKey(ds, "ghost"))?.tier).toBe("redis");
		expect(d1.calls).toBe(1);
		// The consumer's write-through replaces the negative entries.
		expect(await tier.write([{ ck: recordCacheKey(ds, "ghost"), rec: rec(1, { x: "now here" }), ttlSeconds: 60 }])).toBe(1);
		l0.set(recordCacheKey(ds, "ghost"), rec(1, { x: "now here" }), Date.now(), Date.now());
		expect((await reader.lookup([ref(ds, "ghost")], ctx())).get(recordCacheKey(ds, "ghost"))?.rec.v).toEqual({ x: "now here" });
		l0.clear();
		expect((await reader.lookup([ref(ds, "ghost")], ctx())).get(recordCacheKey(ds, "ghost"))).toMatchObject({ tier: "redis", rec: { v: { x: "now here" } } });
	});

	it("counts changes in the dataset's counters: every write of a change once, landed or refused; fills never", async () => {
		const ds = unique("chg");
		const tier = redisTier();
		const ck = recordCacheKey(ds, "k");
		// The first read creates the hash with an epoch and no counts; a fill counts nothing.
		const [first] = await tier.readChanges([ds]);
		expect(first?.epoch).toMatch(/^[0-9a-f-]{36}$/);
		expect(first?.counts.size).toBe(0);
		await tier.fill([{ ref: ref(ds, "k"), rec: rec(1), ttlSeconds: 60 }]);
		expect(await tier.readChanges([ds])).toEqual([first]);
		expect(await tier.write([{ ck, rec: rec(2), ttlSeconds: 60, dataset: ds }])).toBe(1);
		// Refused by the version guard (a reader's fill may have put this revision there first): counted all the same.
		expect(await tier.write([{ ck, rec: rec(2), ttlSeconds: 60, dataset: ds }])).toBe(0);
		const [counters] = await tier.readChanges([ds]);
		expect(counters?.epoch).toBe(first?.epoch);
		expect(counters?.counts.get(changeBucket(ck))).toBe(2);
		expect([...(counters?.counts.values() ?? [])].reduce((a, b) => a + b, 0)).toBe(2);
		// The epoch is the hash's: a later writer bumps under the same one.
		await redisTier().write([{ ck: recordCacheKey(ds, "other"), rec: rec(1), ttlSeconds: 60, dataset: ds }]);
		expect((await tier.readChanges([ds]))[0]?.epoch).toBe(first?.epoch);
		// A hash that was lost (flushed, evicted) comes back under a new epoch, whoever makes it first.
		await store().deleteMany([`c:${ds}`]);
		await tier.write([{ ck, rec: rec(3), ttlSeconds: 60, dataset: ds }]);
		const [again] = await tier.readChanges([ds]);
		expect(again?.epoch).not.toBe(first?.epoch);
		expect(again?.counts.get(changeBucket(ck))).toBe(1);
	});

	it("polls counters with reads only once the hash exists (a Global database sends every write to its primary region)", async () => {
		const ds = unique("chgread");
		const tier = redisTier();
		const raw = new Redis({ url: redisEnv.UPSTASH_REDIS_REST_URL, token: redisEnv.UPSTASH_REDIS_REST_TOKEN, enableTelemetry: false });
		const hsetnxCalls = async () => Number(/cmdstat_hsetnx:calls=(\d+)/.exec(String(await raw.exec(["INFO", "commandstats"])))?.[1] ?? 0);
		const [first] = await tier.readChanges([ds]); // makes the hash, with an epoch
		const before = await hsetnxCalls();
		for (let i = 0; i < 3; i++) expect((await tier.readChanges([ds]))[0]?.epoch).toBe(first?.epoch);
		expect(await hsetnxCalls()).toBe(before);
	});

	it("counts a rebuild's drop as a change to each dropped key, after the copy is gone", async () => {
		const ds = unique("chgdrop");
		const tier = redisTier();
		const keys = ["a", "b", "c"];
		const cks = keys.map((k) => recordCacheKey(ds, k));
		await tier.fill(keys.map((k) => ({ ref: ref(ds, k), rec: rec(1), ttlSeconds: 60 })));
		const [before] = await tier.readChanges([ds]);
		// L0 copies taken from these Redis copies must reload: the drop is how direct D1 edits reach the caches.
		expect(await tier.drop(cks, ds)).toBe(3);
		expect(await store().getMany(cks)).toEqual([null, null, null]);
		const [after] = await tier.readChanges([ds]);
		expect(after?.epoch).toBe(before?.epoch);
		for (const ck of cks) expect(after?.counts.get(changeBucket(ck)) ?? 0).toBeGreaterThan(before?.counts.get(changeBucket(ck)) ?? 0);
	});

	it("through the real ingest path: a created key's cached miss is dropped (no value written, no change counted); an update is written through", async () => {
		const ds = unique("neg");
		const admin = { authorization: "Bearer test-admin-key", "content-type": "application/json" };
		const ck = recordCacheKey(ds, "k");
		const raw = async () => (await store().getMany([ck]))[0];
		const post = async (value: Record<string, unknown>) => {
			const res = await exports.default.fetch("http://h/v1/events", {
				method: "POST",
				headers: admin,
				body: JSON.stringify([{ dataset: ds, key: "k", op: "upsert", value }]),
			});
			expect(res.status).toBe(202);
		};
		const revInD1 = (rev: number) =>
			eventually(
				async () =>
					(await env.DB.prepare("SELECT rev FROM records WHERE dataset = ?1 AND key = ?2").bind(ds, "k").first<{ rev: number }>())?.rev === rev
						? true
						: undefined,
				{
					what: `revision ${rev} in D1`,
				},
			);
		await exports.default.fetch(`http://h/v1/datasets/${ds}`, { method: "PUT", headers: admin, body: JSON.stringify({ key: "id", fields: { x: "int" } }) });
		// A reader elsewhere cached the miss in Redis, for a minute: longer than this test, so only a drop removes it.
		await redisTier(store(), 60).fill([{ ref: ref(ds, "k"), rec: { v: null, t: 0, i: "", r: 0 }, ttlSeconds: 60 }]);
		expect(decodeRecord(await raw())?.r).toBe(0);
		const [before] = await redisTier().readChanges([ds]);

		await post({ x: 7 });
		await revInD1(1);
		// The consumer drops the cached miss rather than writing the new value: nobody has read the key yet.
		await eventually(async () => ((await raw()) === null ? true : undefined), { what: "the cached miss dropped from Redis" });
		const [after] = await redisTier().readChanges([ds]);
		expect(after?.counts.get(changeBucket(ck)) ?? 0).toBe(before?.counts.get(changeBucket(ck)) ?? 0);
		// The first read finds the record in D1 and fills Redis.
		const read = await exports.default.fetch(`http://h/v1/datasets/${ds}/records/k`, { headers: admin });
		expect(read.status).toBe(200);
		expect(read.headers.get("x-hotpath-tier")).toBe("d1");
		expect(((await read.json()) as { value: unknown }).value).toEqual({ x: 7 });
		expect(await eventually(async () => decodeRecord(await raw()) ?? undefined, { what: "the read's fill in Redis" })).toMatchObject({ r: 1, v: { x: 7 } });

		// A key D1 held before the batch is written through, version-guarded, and its change counted.
		await post({ x: 8 });
		await revInD1(2);
		expect(
			await eventually(
				async () => {
					const held = decodeRecord(await raw());
					return held?.r === 2 ? held : undefined;
				},
				{ what: "revision 2 in Redis" },
			),
		).toMatchObject({ v: { x: 8 } });
		const [updated] = await redisTier().readChanges([ds]);
		expect(updated?.counts.get(changeBucket(ck))).toBe((before?.counts.get(changeBucket(ck)) ?? 0) + 1);
	});
});

describe("dropping a created key's cached miss while Redis is unreachable", () => {
	it("queues a Redis refresh until a miss cached before it has expired by itself; none when the miss outlives no delay", async () => {
		const { refreshCaches } = await import("../../src/ingest/cache-refresh");
		const { servicesFor } = await import("../../src/services");
		const real = env as unknown as Env;
		const ds = unique("dropdown");
		const { queue, sent } = recordingQueue<{ refresh: { key: string }[]; tiers: string[]; until?: number }>(real.EVENTS_QUEUE);
		const created = [{ dataset: ds, key: "k", rec: rec(1), changed: true, syncedAt: Date.now() }];
		// Nothing listens on port 1: every Redis call fails. The test config's cool-down puts the refresh 1 s out.
		// A KV binding of its own makes servicesFor build services for this env rather than reuse the worker's.
		const ownKv = () =>
			new Proxy(real.RECORDS_KV, {
				get(target, prop) {
					const v = Reflect.get(target, prop);
					return typeof v === "function" ? v.bind(target) : v;
				},
			});
		const down = (negativeTtl: string) =>
			servicesFor({ ...real, RECORDS_KV: ownKv(), UPSTASH_REDIS_REST_URL: "http://127.0.0.1:1", NEGATIVE_TTL_SECONDS: negativeTtl, EVENTS_QUEUE: queue });
		try {
			const before = Date.now();
			await refreshCaches(down("60"), created, []);
			expect(sent).toHaveLength(1);
			expect(sent[0]?.tiers).toEqual(["redis"]);
			expect(sent[0]?.refresh.map((r) => r.key)).toEqual(["k"]);
			expect(sent[0]?.until).toBeGreaterThanOrEqual(before + 60_000);
			expect(sent[0]?.until).toBeLessThanOrEqual(Date.now() + 60_000);
			// A miss cached for 1 s is gone before a refresh 1 s out could come: nothing to queue.
			sent.length = 0;
			await refreshCaches(down("1"), created, []);
			expect(sent).toEqual([]);
		} finally {
			servicesFor(real);
		}
	});
});

describe("Redis failover", () => {
	it("keeps every read correct while Redis dies, reports it down, and recovers by itself", async () => {
		const control = redisEnv.REDIS_CONTROL_URL;
		const admin = { authorization: "Bearer test-admin-key", "content-type": "application/json" };
		const ds = unique("failover");
		expect(
			(await exports.default.fetch(`http://h/v1/datasets/${ds}`, { method: "PUT", headers: admin, body: JSON.stringify({ key: "id", fields: { n: "int" } }) }))
				.status,
		).toBe(201);
		const s = store();
		const tier = redisTier(s);
		for (let i = 0; i < 90; i++) await seedD1(ds, `k${i}`, { n: i });
		// The first 60 keys are also in Redis, so reads are answered there until it dies.
		await tier.write(
			Array.from({ length: 60 }, (_, i) => ({ ck: recordCacheKey(ds, `k${i}`), rec: { v: { n: i }, t: Date.now(), i: "seed", r: 1 }, ttlSeconds: 600 })),
		);

		const tiersSeen: string[] = [];
		const read = async (i: number) => {
			const res = await exports.default.fetch(`http://h/v1/datasets/${ds}/records/k${i}`, { headers: admin });
			expect(res.status).toBe(200);
			expect(((await res.json()) as { value: unknown }).value).toEqual({ n: i });
			tiersSeen.push(res.headers.get("x-hotpath-tier") ?? "");
		};
		for (let i = 0; i < 30; i++) await read(i);
		expect(tiersSeen.every((t) => t === "redis")).toBe(true);

		expect((await fetch(`${control}/redis/stop`, { method: "POST" })).status).toBe(204);
		for (let i = 30; i < 60; i++) await read(i);
		expect(tiersSeen.slice(30).every((t) => t === "d1")).toBe(true);
		// /healthz reuses one probe for up to HEALTH_CACHE_MS: it reports Redis down within that.
		await eventually(
			async () =>
				((await (await exports.default.fetch("http://h/healthz")).json()) as { tiers: { redis: string } }).tiers.redis === "down" ? true : undefined,
			{ what: "/healthz reporting Redis down" },
		);

		expect((await fetch(`${control}/redis/start`, { method: "POST" })).status).toBe(204);
		let redisState = "down";
		const deadline = Date.now() + 10_000;
		while (redisState !== "up" && Date.now() < deadline) {
			await new Promise((r) => setTimeout(r, 200));
			redisState = ((await (await exports.default.fetch("http://h/healthz")).json()) as { tiers: { redis: string } }).tiers.redis;
		}
		expect(redisState).toBe("up");
		// Misses fill the restarted (empty) Redis again.
		for (let i = 60; i < 90; i++) await read(i);
		// The fills run in the background after each answer.
		const filledCount = async () =>
			(await s.getMany(Array.from({ length: 30 }, (_, j) => recordCacheKey(ds, `k${60 + j}`)))).filter((v) => decodeRecord(v)?.r === 1).length;
		await eventually(async () => ((await filledCount()) === 30 ? true : undefined), { what: "30 fills in the restarted Redis" });
		expect(await filledCount()).toBe(30);
	});
});
