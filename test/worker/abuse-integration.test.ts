/**
 * Keys, limits and abuse: per-key rate limits (the fast lane included) and expiry, body limits
 * checked before parsing, unknown bearer tokens that can neither evict known keys nor cost a D1
 * query each, and a /healthz that does not make every backend work on every call.
 */
import { drizzle } from "drizzle-orm/d1";
import { describe, expect, it } from "vitest";
import { KeyStore } from "../../src/auth/keys";
import { ControlVersion } from "../../src/control/version";
import { servicesFor } from "../../src/services";
import {
	type CreatedKey,
	call,
	countingStatements,
	createDataset,
	env,
	expectJson,
	expectProblem,
	getRecord,
	onKeyTable,
	seedD1,
	uniqueName,
	userSpec,
} from "./helpers";

const createKeyWith = async (body: Record<string, unknown>) =>
	expectJson<CreatedKey & { rate_limit: unknown; expires_at: string | null }>(
		await call("POST", "/v1/keys", { json: { name: uniqueName("key"), ...body } }),
		201,
	);

describe("rate limits", () => {
	it("a key's budget holds for plain reads of a hot key too (the L0 fast lane does not bypass it)", async () => {
		const ds = await createDataset(userSpec());
		await seedD1(ds, "hot", { age: 1 });
		expect((await getRecord(ds, "hot")).status).toBe(200); // now in L0
		const k = await createKeyWith({ scopes: ["read"], rate_limit: { requests: 3, period_seconds: 60 } });
		expect(k.rate_limit).toEqual({ requests: 3, period_seconds: 60 });
		for (let i = 0; i < 3; i++) expect((await getRecord(ds, "hot", "", { key: k.key })).status).toBe(200);
		const res = await getRecord(ds, "hot", "", { key: k.key });
		await expectProblem(res, 429);
		// One token comes back every 20 s.
		expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		expect(Number(res.headers.get("retry-after"))).toBeLessThanOrEqual(20);
		// Other keys are not affected.
		expect((await getRecord(ds, "hot")).status).toBe(200);
	});

	it("a budget refills at its rate", async () => {
		const k = await createKeyWith({ scopes: ["read"], rate_limit: { requests: 2, period_seconds: 1 } });
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(429);
		await new Promise((r) => setTimeout(r, 600));
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
	});

	it("rate_limit and expires_at are validated", async () => {
		for (const body of [
			{ rate_limit: { requests: 0, period_seconds: 60 } },
			{ rate_limit: { requests: 10 } },
			{ rate_limit: { requests: 10, period_seconds: 0 } },
			{ rate_limit: { requests: 10, period_seconds: 60, burst: 3 } },
			{ expires_at: "tomorrow" },
			{ expires_at: new Date(Date.now() - 60_000).toISOString() },
		]) {
			const p = await expectProblem(await call("POST", "/v1/keys", { json: { name: "x", scopes: ["read"], ...body } }), 400);
			expect(p.errors?.[0]?.pointer).toMatch(/^\/(rate_limit|expires_at)/);
		}
	});

	it("expires_at is kept and listed, and the key works until then", async () => {
		const at = new Date(Date.now() + 3_600_000).toISOString();
		const k = await createKeyWith({ scopes: ["read"], expires_at: at });
		expect(k.expires_at).toBe(at);
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		const { keys } = await expectJson<{ keys: { id: string; expires_at: string }[] }>(await call("GET", "/v1/keys"), 200);
		expect(keys.find((x) => x.id === k.id)?.expires_at).toBe(at);
	});
});

// The tests that revoke or expire a key before it is ever used pass whatever the isolate's key cache
// does: only a key the isolate has already authenticated (and cached) shows the cache honours them.
describe("keys this isolate has already authenticated", () => {
	it("are refused once they expire, on the fast lane and through the middleware alike", async () => {
		const ds = await createDataset(userSpec());
		await seedD1(ds, "k", { age: 1 });
		const expiring = await createKeyWith({ scopes: ["read"], expires_at: new Date(Date.now() + 1500).toISOString() });
		expect((await getRecord(ds, "k", "", { key: expiring.key })).status).toBe(200);
		expect((await call("GET", "/v1/datasets", { key: expiring.key })).status).toBe(200);
		await new Promise((r) => setTimeout(r, 1600));
		expect((await expectProblem(await getRecord(ds, "k", "", { key: expiring.key }), 401)).detail).toMatch(/expired at/);
		expect((await expectProblem(await call("GET", "/v1/datasets", { key: expiring.key }), 401)).detail).toMatch(/expired at/);
	});

	it("are refused at once when revoked through this isolate", async () => {
		const ds = await createDataset(userSpec());
		await seedD1(ds, "k", { age: 1 });
		const k = await createKeyWith({ scopes: ["read"] });
		expect((await getRecord(ds, "k", "", { key: k.key })).status).toBe(200);
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		expect((await call("DELETE", `/v1/keys/${k.id}`)).status).toBe(204);
		await expectProblem(await getRecord(ds, "k", "", { key: k.key }), 401);
		await expectProblem(await call("GET", "/v1/datasets", { key: k.key }), 401);
	});

	it("are refused within CONTROL_CHECK_MS (production's 1 s) when another isolate revokes them", async () => {
		const ds = await createDataset(userSpec());
		await seedD1(ds, "k", { age: 1 });
		const k = await createKeyWith({ scopes: ["read"] });
		expect((await getRecord(ds, "k", "", { key: k.key })).status).toBe(200);
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		// Another isolate: its own control version, so this isolate learns of the change only from D1.
		const elsewhere = new KeyStore(drizzle(env.DB), new ControlVersion(drizzle(env.DB), 1000), undefined);
		expect(await elsewhere.revoke(k.id)).toBe(true);
		await new Promise((r) => setTimeout(r, 1100));
		await expectProblem(await getRecord(ds, "k", "", { key: k.key }), 401);
		await expectProblem(await call("GET", "/v1/datasets", { key: k.key }), 401);
	});
});

describe("keys made by keys with an expiry or a rate limit", () => {
	// An admin key that expires (or is rate-limited) must not mint a key without those bounds:
	// the child would go on working after its parent expired, at any rate.
	it("expire no later than their maker", async () => {
		const inAMinute = Date.now() + 60_000;
		const parent = await createKeyWith({ scopes: ["admin"], expires_at: inAMinute });
		const mint = (body: Record<string, unknown>) =>
			call("POST", "/v1/keys", { key: parent.key, json: { name: uniqueName("child"), scopes: ["read"], ...body } });
		for (const body of [{}, { expires_at: null }, { expires_at: inAMinute + 1000 }]) {
			const p = await expectProblem(await mint(body), 403);
			expect(p.detail).toMatch(/expires/);
		}
		const child = await expectJson<CreatedKey & { expires_at: string }>(await mint({ expires_at: inAMinute }), 201);
		expect(child.expires_at).toBe(new Date(inAMinute).toISOString());
	});

	it("are rate-limited no looser than their maker", async () => {
		const parent = await createKeyWith({ scopes: ["admin"], rate_limit: { requests: 100, period_seconds: 60 } });
		const mint = (body: Record<string, unknown>) =>
			call("POST", "/v1/keys", { key: parent.key, json: { name: uniqueName("child"), scopes: ["read"], ...body } });
		for (const rate_limit of [undefined, null, { requests: 101, period_seconds: 60 }, { requests: 50, period_seconds: 20 }]) {
			const p = await expectProblem(await mint({ rate_limit }), 403);
			expect(p.detail).toMatch(/rate limit/);
		}
		for (const rate_limit of [
			{ requests: 100, period_seconds: 60 },
			{ requests: 10, period_seconds: 6 },
		])
			await expectJson(await mint({ rate_limit }), 201);
		// An unlimited key may mint any key.
		await expectJson(await call("POST", "/v1/keys", { json: { name: uniqueName("child"), scopes: ["read"] } }), 201);
	});
});

describe("body limits, checked before the body is parsed", () => {
	// Invalid JSON just over the limit: a 413 (not a 400 about the JSON) shows the size was checked first.
	const cases: [string, string, number][] = [
		["PUT", "/v1/datasets/limit_probe", 256 * 1024],
		["POST", "/v1/lookup", 1024 * 1024],
		["POST", "/v1/keys", 16 * 1024],
		["POST", "/v1/events", 5 * 1024 * 1024],
	];
	it.each(cases)("%s %s: a body over %i bytes -> 413 problem", async (method, path, limit) => {
		const p = await expectProblem(await call(method, path, { body: "{".repeat(limit + 1), headers: { "content-type": "application/json" } }), 413);
		expect(p.detail).toMatch(/larger than/);
	});
	it.each(cases)("%s %s: a body at the limit is parsed (and its errors reported as 400)", async (method, path, limit) => {
		await expectProblem(await call(method, path, { body: "{".repeat(limit), headers: { "content-type": "application/json" } }), 400);
	});
});

describe("unknown bearer tokens", () => {
	it("cannot evict a known key from the isolate's cache, however many are tried", async () => {
		const control = new ControlVersion(drizzle(env.DB), 60_000);
		// A frozen clock keeps the guesses' D1 lookups to one per hash prefix, so the test is quick.
		const store = new KeyStore(drizzle(env.DB), control, undefined, () => 2_000_000);
		const { key, info } = await store.create({ name: "known", scopes: ["read"], datasets: null, rateLimit: null, expiresAt: null });
		expect((await store.authenticate(key))?.id).toBe(info.id);
		// Revoked behind the cache's back (no version bump): only a cache miss would notice.
		await env.DB.prepare("UPDATE api_keys SET revoked_at = 1 WHERE id = ?1").bind(info.id).run();
		for (let i = 0; i < 10_050; i++) await store.authenticate(`hp_unknown_${i}`);
		expect((await store.authenticate(key))?.id).toBe(info.id);
		// 10,050 lookups take ~6 s alone, and past the default 20 s on a busy machine.
	}, 60_000);

	it("cost at most one D1 query per hash prefix per second, not one each", async () => {
		const counted = countingStatements(env.DB, onKeyTable);
		const control = new ControlVersion(drizzle(env.DB), 60_000);
		// A frozen clock: every attempt falls in the same second.
		const store = new KeyStore(drizzle(counted.db), control, undefined, () => 1_000_000);
		const tokens = Array.from({ length: 6000 }, (_, i) => `hp_guess_${i}`);
		for (const t of tokens) expect(await store.authenticate(t)).toBeNull();
		// 6,000 guesses over 4,096 hash prefixes: at most one query per prefix.
		expect(counted.queries).toBeLessThanOrEqual(4096);
		expect(counted.queries).toBeLessThan(tokens.length);
		const first = counted.queries;
		for (const t of tokens) await store.authenticate(t);
		expect(counted.queries).toBe(first);
	}, 60_000);

	it("a key created after a failed guess in its hash group still authenticates at once (the creation invalidates)", async () => {
		const k = await createKeyWith({ scopes: ["read"] });
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
	});
});

describe("/healthz", () => {
	it("probes the backends at most once per HEALTH_CACHE_MS, however often it is called", async () => {
		const redis = servicesFor(env).redis;
		if (!redis) throw new Error("the test config provides the hot tier");
		let probes = 0;
		const original = redis.probe.bind(redis);
		redis.probe = async () => {
			probes++;
			return original();
		};
		try {
			// Let any cached probe expire, then call it many times in a row.
			await new Promise((r) => setTimeout(r, 2100));
			for (let i = 0; i < 20; i++) expect((await call("GET", "/healthz", { key: null })).status).toBe(200);
			expect(probes).toBe(1);
		} finally {
			redis.probe = original;
		}
	});
});
