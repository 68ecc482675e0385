/**
 * No copy is served as fresher than it is: provenance through L0, fills that never come from a
 * tier lagging more than the filled one may, tiers the consumer could not write refreshed later,
 * L0 refreshed only where it holds a copy, caches that a revocation or a concurrent spec change
 * cannot undo, and reads that stay correct with KV and Redis wiped or D1 gone.
 */
import { Redis } from "@upstash/redis/cloudflare";
import { drizzle } from "drizzle-orm/d1";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { KeyStore } from "../../src/auth/keys";
import { ControlVersion } from "../../src/control/version";
import { Registry } from "../../src/registry/registry";
import { normaliseSpec, specInputSchema } from "../../src/registry/spec";
import { servicesFor } from "../../src/services";
import { decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { RedisStore } from "../../src/storage/redis";
import {
	call,
	createDataset,
	d1Record,
	EVENTS_QUEUE,
	env,
	eventsBody,
	eventually,
	expectJson,
	expectProblem,
	getRecord,
	holdInKv,
	message,
	type RecordBody,
	runQueue,
	seedD1,
	settle,
	uniqueName,
	userSpec,
} from "./helpers";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };
const redisStore = () => new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN);
const inRedis = async (ds: string, key: string) => decodeRecord((await redisStore().getMany([recordCacheKey(ds, key)]))[0]);

let ds = "";
beforeAll(async () => {
	ds = await createDataset(userSpec(3600));
});

const undo: string[] = [];
afterEach(async () => {
	while (undo.length) await env.DB.prepare(undo.pop() as string).run();
});

describe("max_staleness", () => {
	// An empty max_staleness (a client's unset variable) was taken as absent: the read then held the
	// copy to the dataset's ttl_seconds (an hour here) and answered a minute-old value as present.
	it("an empty max_staleness is a 400 naming it, never a read held to the dataset's ttl instead", async () => {
		const k = uniqueName("k");
		await seedD1(ds, k, { age: 1 }, Date.now() - 60_000);
		const p = await expectProblem(await getRecord(ds, k, "max_staleness="), 400);
		expect(p.errors?.[0]?.pointer).toBe("max_staleness");
	});
});

describe("provenance: a copy's lag counts from when its source last matched D1", () => {
	it("a copy L0 took from KV is not served to a read with a tighter max_staleness, however recently L0 took it", async () => {
		const k = uniqueName("prov");
		// D1 has the current value (rev 2); KV still holds the previous one (rev 1), as a far location can for up to 60 s.
		await seedD1(ds, k, { age: 2 }, Date.now() - 1000, 2);
		await env.RECORDS_KV.put(recordCacheKey(ds, k), JSON.stringify({ r: 1, t: Date.now() - 2000, i: "old", v: { age: 1 } }), { expirationTtl: 60 });

		const loose = await getRecord(ds, k, "max_staleness=3600");
		expect(loose.headers.get("x-hotpath-tier")).toBe("kv");
		expect(((await loose.json()) as RecordBody).value).toEqual({ age: 1 });
		await settle();
		// The KV copy lags D1 by up to 60 s: Redis (allowed 1 s) is not filled with it.
		expect(await inRedis(ds, k)).toBeNull();

		// L0 now holds the KV copy, taken a moment ago. A read that tolerates 2 s must not get it.
		const tight = await getRecord(ds, k, "max_staleness=2");
		expect(tight.headers.get("x-hotpath-tier")).toBe("d1");
		expect((await tight.json()) as RecordBody).toMatchObject({ status: "present", value: { age: 2 } });
		// The D1 answer fills Redis.
		await eventually(async () => ((await inRedis(ds, k))?.r === 2 ? true : undefined), { what: "the D1 copy in Redis" });
	});

	it("a revalidation that finds the same revision in KV does not make the copy look fresher than it is", async () => {
		const k = uniqueName("reval");
		await seedD1(ds, k, { age: 5 }, Date.now() - 1000, 1);
		await env.RECORDS_KV.put(recordCacheKey(ds, k), JSON.stringify({ r: 1, t: Date.now() - 1000, i: "seed", v: { age: 5 } }), { expirationTtl: 60 });
		const l0 = servicesFor(env).reader.l0;
		// L0 took the KV copy 6 s ago (past L0's 5 s fresh time): the next read revalidates it, from KV again.
		l0.set(recordCacheKey(ds, k), { v: { age: 5 }, t: Date.now() - 1000, i: "seed", r: 1 }, Date.now() - 6000, Date.now() - 66_000);
		expect((await getRecord(ds, k, "max_staleness=3600")).headers.get("x-hotpath-tier")).toBe("l0");
		await settle();
		const hit = l0.get(recordCacheKey(ds, k), Number.POSITIVE_INFINITY, Date.now());
		// Revalidated (so fresh in L0 again), but still known to match D1 only as of KV's lag ago.
		expect(hit?.state).toBe("fresh");
		expect(Date.now() - (hit?.syncedAt ?? Date.now())).toBeGreaterThanOrEqual(59_000);
		expect((await getRecord(ds, k, "max_staleness=10")).headers.get("x-hotpath-tier")).not.toBe("l0");
	});
});

/** Reads a key once so that its fill puts revision `rev` in Redis (the consumer writes through only keys D1 held before). */
async function readIntoRedis(k: string, rev: number): Promise<void> {
	expect((await getRecord(ds, k)).status).toBe(200);
	await eventually(async () => ((await inRedis(ds, k))?.r === rev ? true : undefined), { what: `revision ${rev} in Redis` });
}

describe("the consumer never leaves an older copy in a tier it could not write", () => {
	it("when a Redis write fails, the consumer acks, and a refresh message rewrites the copy once Redis takes it", async () => {
		const services = servicesFor(env);
		const k = uniqueName("skip");
		const ck = recordCacheKey(ds, k);
		const t = Date.now() - 10_000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "v1", dataset: ds, key: k, op: "upsert", value: { age: 1 }, time: t }]))]);
		await readIntoRedis(k, 1);
		const held = (await redisStore().getMany([ck]))[0] as string;
		expect(decodeRecord(held)?.r).toBe(1);

		// A write that Redis refuses: it is over its memory limit (as an Upstash database over its size).
		const raw = new Redis({ url: redisEnv.UPSTASH_REDIS_REST_URL, token: redisEnv.UPSTASH_REDIS_REST_TOKEN, enableAutoPipelining: false });
		const config = (value: string) =>
			fetch(redisEnv.UPSTASH_REDIS_REST_URL, {
				method: "POST",
				headers: { authorization: `Bearer ${redisEnv.UPSTASH_REDIS_REST_TOKEN}` },
				body: JSON.stringify(["CONFIG", "SET", "maxmemory", value]),
			}).then((r) => r.text());
		const errorsBefore = services.stats.tiers.redis.errors;
		const msg = message(eventsBody([{ id: "v2", dataset: ds, key: k, op: "upsert", value: { age: 2 }, time: t + 1 }]));
		await config("1");
		try {
			expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
		} finally {
			await config("0");
		}
		expect(services.stats.tiers.redis.errors).toBeGreaterThan(errorsBefore);
		expect((await d1Record(ds, k))?.rev).toBe(2);
		// Redis takes writes again, holding the old copy (a reader's fill of it after the consumer's drop);
		// the refresh message brings it up to D1.
		await raw.set(ck, held);
		await eventually(async () => ((await inRedis(ds, k))?.r === 2 ? true : undefined), { what: "the refreshed Redis copy", timeoutMs: 15_000 });
		expect((await inRedis(ds, k))?.v).toEqual({ age: 2 });
	});

	// A latency blip opened the consumer isolate's breaker, but Redis itself was fine, and readers in
	// other isolates (breakers closed) kept reading it. The consumer skipped the write and queued a
	// refresh that waits out the breaker, so for seconds they took the old copy as one at most
	// REDIS_MAX_LAG_SECONDS behind D1: a read with max_staleness=1 got the previous value, present.
	it("with the breaker open but Redis answering, the change still reaches Redis at once: no reader takes the old copy as current", async () => {
		const services = servicesFor(env);
		const redis = services.redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		const k = uniqueName("blip");
		// Event times ahead of the clock (within the allowed skew) keep both values young, so only the copy's lag decides.
		const t = Date.now() + 60_000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "v1", dataset: ds, key: k, op: "upsert", value: { age: 1 }, time: t }]))]);
		await readIntoRedis(k, 1);

		for (let i = 0; i < 3; i++) redis.breaker.failure();
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "v2", dataset: ds, key: k, op: "upsert", value: { age: 2 }, time: t + 1 }]))]);
		expect((await d1Record(ds, k))?.rev).toBe(2);
		// This isolate's calls keep failing for 1.5 s (past Redis's 1 s lag bound), so its breaker stays open.
		for (const end = Date.now() + 1500; Date.now() < end; ) {
			redis.breaker.failure();
			await new Promise((r) => setTimeout(r, 50));
		}
		// A reader whose breaker is closed (another isolate's, or this one's once Redis answers it again).
		redis.breaker.success();
		const res = await getRecord(ds, k, "max_staleness=1");
		expect((await res.json()) as RecordBody).toMatchObject({ status: "present", value: { age: 2 } });
		expect((await inRedis(ds, k))?.v).toEqual({ age: 2 });
	});

	it("the consumer refreshes L0 only where it already holds a copy", async () => {
		const l0 = servicesFor(env).reader.l0;
		const held = uniqueName("held");
		const cold = Array.from({ length: 20 }, () => uniqueName("cold"));
		const t = Date.now() - 5000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "h1", dataset: ds, key: held, op: "upsert", value: { age: 1 }, time: t }]))]);
		expect((await getRecord(ds, held)).status).toBe(200); // L0 now holds it
		await runQueue(EVENTS_QUEUE, [
			message(
				eventsBody([
					{ id: "h2", dataset: ds, key: held, op: "upsert", value: { age: 2 }, time: t + 1 },
					...cold.map((k) => ({ id: "c1", dataset: ds, key: k, op: "upsert" as const, value: { age: 9 }, time: t })),
				]),
			),
		]);
		expect(l0.get(recordCacheKey(ds, held), Number.POSITIVE_INFINITY, Date.now())?.rec).toMatchObject({ r: 2, v: { age: 2 } });
		for (const k of cold) expect(l0.get(recordCacheKey(ds, k), Number.POSITIVE_INFINITY, Date.now())).toBeUndefined();
	});

	it("keys KV holds are rewritten by the consumer, with the copy's expiry bounded by KV's allowed lag", async () => {
		const k = uniqueName("kvheld");
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "a", dataset: ds, key: k, op: "upsert", value: { age: 1 }, time: Date.now() - 2000 }]))]);
		await holdInKv(ds, k);
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "b", dataset: ds, key: k, op: "upsert", value: { age: 2 }, time: Date.now() - 1000 }]))]);
		const [listed] = (await env.RECORDS_KV.list({ prefix: recordCacheKey(ds, k) })).keys;
		expect(JSON.parse((await env.RECORDS_KV.get(recordCacheKey(ds, k))) ?? "null")).toMatchObject({ r: 2, v: { age: 2 } });
		expect(listed?.expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 61);
	});
});

describe("caches that a change cannot be undone in", () => {
	/** A D1 whose reads of `table` complete, then wait for the test to let them return. */
	function gatedDb(table: string) {
		let release: () => void = () => {};
		let armed = false;
		const gate = () => (armed ? new Promise<void>((r) => (release = r)) : Promise.resolve());
		const wrapStmt = (stmt: D1PreparedStatement, gated: boolean): D1PreparedStatement =>
			new Proxy(stmt, {
				get(target, prop) {
					const v = Reflect.get(target, prop);
					if (typeof v !== "function") return v;
					if (prop === "bind") return (...args: unknown[]) => wrapStmt(v.apply(target, args), gated);
					if (gated && (prop === "all" || prop === "raw" || prop === "first" || prop === "run")) {
						return async (...args: unknown[]) => {
							const result = await v.apply(target, args);
							await gate();
							return result;
						};
					}
					return v.bind(target);
				},
			});
		const db = new Proxy(env.DB, {
			get(target, prop) {
				const v = Reflect.get(target, prop);
				if (prop === "prepare") return (sql: string) => wrapStmt(v.call(target, sql), armed && sql.includes(`"${table}"`) && /^\s*select/i.test(sql));
				return typeof v === "function" ? v.bind(target) : v;
			},
		});
		return {
			db,
			arm: () => {
				armed = true;
			},
			open: () => {
				armed = false;
				release();
			},
		};
	}

	it("a key read from D1 before its revocation is not cached after it: the next request is refused", async () => {
		const gated = gatedDb("api_keys");
		const control = new ControlVersion(drizzle(env.DB), 1000);
		const store = new KeyStore(drizzle(gated.db), control, undefined);
		const { key, info } = await store.create({ name: "racer", scopes: ["read"], datasets: null, rateLimit: null, expiresAt: null });
		gated.arm();
		const inFlight = store.authenticate(key);
		// Let the lookup reach D1 and read the key as active...
		await new Promise((r) => setTimeout(r, 50));
		// ...then revoke it while that lookup has not returned yet.
		expect(await store.revoke(info.id)).toBe(true);
		gated.open();
		expect((await inFlight)?.id).toBe(info.id); // that request started before the revocation
		expect(await store.authenticate(key)).toBeNull();
	});

	it("of two concurrent incompatible spec updates, one succeeds and the other is refused against it", async () => {
		const name = uniqueName();
		const gated = gatedDb("datasets");
		const control = new ControlVersion(drizzle(env.DB), 1000);
		const registry = new Registry(drizzle(gated.db), control);
		const spec = (fields: Record<string, string>) => normaliseSpec(name, specInputSchema.parse({ key: "id", fields }));
		await registry.put(spec({ a: "int" }));
		// A reads the current spec and is held there; B changes it meanwhile; then A goes on.
		gated.arm();
		const a = registry.put(spec({ a: "int", b: "string" }));
		await new Promise((r) => setTimeout(r, 50));
		const other = new Registry(drizzle(env.DB), control);
		expect((await other.put(spec({ a: "int", b: "float" }))).created).toBe(false);
		gated.open();
		await expect(a).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(/field "b" changes type from float to string/) });
		const row = await env.DB.prepare("SELECT spec FROM datasets WHERE name = ?1").bind(name).first<{ spec: string }>();
		expect(JSON.parse(row?.spec ?? "{}").fields.b).toEqual({ type: "float" });
	});

	it("a spec cached from a load that a change overtook is not kept", async () => {
		const name = uniqueName();
		const gated = gatedDb("datasets");
		const control = new ControlVersion(drizzle(env.DB), 60_000);
		const registry = new Registry(drizzle(gated.db), control);
		gated.arm();
		const loading = registry.all();
		await new Promise((r) => setTimeout(r, 50));
		// The change lands (and this isolate learns of it) while the load is in flight.
		await new Registry(drizzle(env.DB), control).put(normaliseSpec(name, specInputSchema.parse({ key: "id", fields: { a: "int" } })));
		gated.open();
		expect((await loading).has(name)).toBe(false);
		expect((await registry.all()).has(name)).toBe(true);
	});
});

describe("reads stay correct whatever the caches hold", () => {
	it("with KV and Redis wiped and L0 cleared, reads come from D1, are correct, and fill the tiers again", async () => {
		const keys = Array.from({ length: 5 }, () => uniqueName("wipe"));
		const t = Date.now() - 3000;
		await runQueue(EVENTS_QUEUE, [
			message(eventsBody(keys.map((k, i) => ({ id: `w${i}`, dataset: ds, key: k, op: "upsert" as const, value: { age: i }, time: t })))),
		]);
		for (const k of keys) expect((await getRecord(ds, k)).status).toBe(200);
		await settle();
		// Wipe: every KV copy of the dataset, all of Redis, and this isolate's L0.
		for (const k of (await env.RECORDS_KV.list({ prefix: `r:${ds}:` })).keys) await env.RECORDS_KV.delete(k.name);
		await new Redis({ url: redisEnv.UPSTASH_REDIS_REST_URL, token: redisEnv.UPSTASH_REDIS_REST_TOKEN, enableAutoPipelining: false }).flushdb();
		servicesFor(env).reader.l0.clear();
		for (const [i, k] of keys.entries()) {
			const res = await getRecord(ds, k);
			expect(res.headers.get("x-hotpath-tier")).toBe("d1");
			expect((await res.json()) as RecordBody).toMatchObject({ status: "present", value: { age: i } });
		}
		await eventually(async () => ((await Promise.all(keys.map((k) => inRedis(ds, k)))).every((c) => c?.r === 1) ? true : undefined), {
			what: "Redis refilled",
		});
		for (const k of keys) expect(JSON.parse((await env.RECORDS_KV.get(recordCacheKey(ds, k))) ?? "null")).toMatchObject({ r: 1 });
	});

	// The control check (registry and key changes) asks D1 every CONTROL_CHECK_MS; it failing made
	// every request a 500, cached keys and the bootstrap key's included.
	it("with D1 wholly down, cached keys are still served and the rest is a 503, never a 500", async () => {
		const cached = uniqueName("c");
		const cold = uniqueName("cold");
		await seedD1(ds, cached, { age: 1 });
		const reader = await expectJson<{ key: string }>(await call("POST", "/v1/keys", { json: { name: uniqueName("key"), scopes: ["read"] } }), 201);
		expect((await getRecord(ds, cached)).status).toBe(200);
		expect((await getRecord(ds, cached, "", { key: reader.key })).status).toBe(200);
		for (const table of ["control_version", "datasets", "api_keys", "records"]) {
			await env.DB.prepare(`ALTER TABLE ${table} RENAME TO ${table}_away`).run();
			undo.push(`ALTER TABLE ${table}_away RENAME TO ${table}`);
		}
		// Past the control check's interval, so the next request asks D1.
		await new Promise((r) => setTimeout(r, 1100));
		for (const key of [undefined, reader.key]) {
			const hit = await getRecord(ds, cached, "max_staleness=3600", { key });
			expect(hit.status).toBe(200);
			expect(hit.headers.get("x-hotpath-tier")).toBe("l0");
			await hit.body?.cancel();
		}
		const res = await getRecord(ds, cold);
		await expectProblem(res, 503);
		expect(res.headers.get("retry-after")).toBeTruthy();
		// A key this isolate has not seen cannot be checked: a 503 to retry, not a 401 or a 500.
		await expectProblem(await getRecord(ds, cached, "", { key: "hp_never_seen" }), 503);
		await expectProblem(await call("POST", "/v1/keys", { json: { name: uniqueName("key"), scopes: ["read"] } }), 503);
	});

	it("with D1 gone, a key no cache holds is a 503 problem with Retry-After; a key L0 holds is still served", async () => {
		const cached = uniqueName("c");
		const cold = uniqueName("cold");
		await seedD1(ds, cached, { age: 1 });
		await seedD1(ds, cold, { age: 2 });
		expect((await getRecord(ds, cached)).status).toBe(200);
		await env.DB.prepare("ALTER TABLE records RENAME TO records_away").run();
		undo.push("ALTER TABLE records_away RENAME TO records");
		const res = await getRecord(ds, cold);
		const p = await expectProblem(res, 503);
		expect(res.headers.get("retry-after")).toBe("1");
		expect(p.detail).toMatch(/no storage tier could answer/);
		const hit = await getRecord(ds, cached);
		expect(hit.status).toBe(200);
		expect(hit.headers.get("x-hotpath-tier")).toBe("l0");
		await hit.body?.cancel();
	});
});
