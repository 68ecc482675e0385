/**
 * Keys, limits and abuse, round 2: budgets under concurrent requests, long periods, unknown tokens
 * arriving together, and control-plane changes racing loads.
 */
import { drizzle } from "drizzle-orm/d1";
import { describe, expect, it } from "vitest";
import { KeyStore, sha256Hex } from "../../src/auth/keys";
import { ControlVersion } from "../../src/control/version";
import {
	type CreatedKey,
	call,
	countingStatements,
	createDataset,
	env,
	expectJson,
	expectProblem,
	getRecord,
	hangable,
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

describe("rate limits under concurrent requests", () => {
	it("let exactly the budget through, on the fast lane's route and the app's alike, every refusal a 429 problem with Retry-After", async () => {
		const ds = await createDataset(userSpec());
		await seedD1(ds, "hot", { age: 1 });
		expect((await getRecord(ds, "hot")).status).toBe(200);
		for (const path of [`/v1/datasets/${ds}/records/hot`, "/v1/datasets"]) {
			const k = await createKeyWith({ scopes: ["read"], rate_limit: { requests: 5, period_seconds: 3600 } });
			const all = await Promise.all(Array.from({ length: 30 }, () => call("GET", path, { key: k.key })));
			expect(all.filter((r) => r.status === 200)).toHaveLength(5);
			for (const r of all.filter((r) => r.status !== 200)) {
				await expectProblem(r, 429);
				expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
				expect(Number(r.headers.get("retry-after"))).toBeLessThanOrEqual(720);
			}
		}
	});

	it("one request per day: the second waits a day, and a new key is a new budget", async () => {
		const k = await createKeyWith({ scopes: ["read"], rate_limit: { requests: 1, period_seconds: 86400 } });
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		const r = await call("GET", "/v1/datasets", { key: k.key });
		await expectProblem(r, 429);
		expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(86000);
		expect(Number(r.headers.get("retry-after"))).toBeLessThanOrEqual(86400);
		expect((await call("DELETE", `/v1/keys/${k.id}`)).status).toBe(204);
		await expectProblem(await call("GET", "/v1/datasets", { key: k.key }), 401);
	});
});

describe("unknown tokens arriving together", () => {
	it("that share a hash prefix cost one D1 query, not one each", async () => {
		// Tokens whose hashes share a prefix, as an attacker can find in a few thousand tries.
		const want = "abc";
		const tokens: string[] = [];
		for (let i = 0; tokens.length < 12; i++) {
			const t = `hp_same_${i}`;
			if ((await sha256Hex(t)).startsWith(want)) tokens.push(t);
		}
		const counted = countingStatements(env.DB, onKeyTable);
		const control = new ControlVersion(drizzle(env.DB), 60_000);
		const store = new KeyStore(drizzle(counted.db), control, undefined, () => 5_000_000);
		await control.ensureCurrent();
		const out = await Promise.all(tokens.map((t) => store.authenticate(t)));
		expect(out.every((p) => p === null)).toBe(true);
		expect(counted.queries).toBe(1);
		// A real key's requests arriving together in an isolate that has not seen it: all pass, one query.
		const { key, info } = await store.create({ name: "real", scopes: ["read"], datasets: null, rateLimit: null, expiresAt: null });
		await control.ensureCurrent();
		counted.queries = 0;
		const found = await Promise.all(Array.from({ length: 10 }, () => store.authenticate(key)));
		expect(found.map((p) => p?.id)).toEqual(Array(10).fill(info.id));
		expect(counted.queries).toBe(1);
	});
});

describe("a rate-limited key's budget", () => {
	it("is taken once per request on every route, never twice", async () => {
		const ds = await createDataset({ ...userSpec(), search: { text: ["name"] } } as never);
		await seedD1(ds, "u1", { age: 1, name: "ann" });
		const routes: [string, string, unknown?][] = [
			["GET", `/v1/datasets/${ds}/records/u1`],
			["GET", `/v1/datasets/${ds}/records/u1?fields=age`],
			["GET", `/v1/datasets/${ds}`],
			["GET", `/v1/datasets/${ds}/schema`],
			["GET", `/v1/datasets/${ds}/records`],
			["POST", "/v1/lookup", { requests: [{ dataset: ds, keys: ["u1"] }] }],
			["GET", `/v1/datasets/${ds}/records/u1/history`],
			["POST", `/v1/datasets/${ds}/search`, { q: "ann" }],
			["POST", "/graphql", { query: `{ ${ds}(keys: ["u1"]) { key } }` }],
			["GET", `/graphql?query=${encodeURIComponent(`{ ${ds}(keys: ["u1"]) { key } }`)}`],
			["POST", "/v1/events", [{ dataset: ds, key: "u2", value: { age: 2 } }]],
			["POST", `/v1/datasets/${ds}/import`, [{ user_id: "u3", age: 3 }]],
			["GET", "/v1/keys"],
			["GET", "/v1/dead-letters"],
			["GET", `/v1/datasets/${ds}/rebuild`],
		];
		for (const [method, path, json] of routes) {
			const k = await createKeyWith({ scopes: ["admin"], datasets: [ds], rate_limit: { requests: 2, period_seconds: 3600 } });
			const statuses: number[] = [];
			for (let i = 0; i < 3; i++) {
				const r = await call(method, path, { key: k.key, json, headers: path.startsWith("/graphql?") ? { accept: "application/json" } : {} });
				statuses.push(r.status);
				await r.arrayBuffer();
			}
			expect({ route: `${method} ${path}`, statuses: statuses.map((s) => (s === 429 ? 429 : "ok")) }).toEqual({
				route: `${method} ${path}`,
				statuses: ["ok", "ok", 429],
			});
		}
	});
});

describe("the control version check", () => {
	it("is one D1 query shared by requests arriving together, in a cold isolate and just after a change made there", async () => {
		const checks = countingStatements(env.DB, (sql) => sql.includes('"control_version"') && sql.startsWith("select"));
		const control = new ControlVersion(drizzle(checks.db), 60_000);
		const store = new KeyStore(drizzle(env.DB), control, undefined);
		const burst = () => Promise.all(Array.from({ length: 12 }, (_, i) => store.authenticate(`hp_cold_${i}`)));
		expect((await burst()).every((p) => p === null)).toBe(true);
		expect(checks.queries).toBe(1);
		// A change made in this isolate: the next requests check again, once between them.
		const { key, info } = await store.create({ name: "after", scopes: ["read"], datasets: null, rateLimit: null, expiresAt: null });
		checks.queries = 0;
		const found = await Promise.all(Array.from({ length: 12 }, () => store.authenticate(key)));
		expect(found.map((p) => p?.id)).toEqual(Array(12).fill(info.id));
		expect(checks.queries).toBe(1);
	});
});

describe("a control version check that never answers", () => {
	it("does not stop the isolate from checking: a revocation elsewhere still shows within an interval or two", async () => {
		// D1 statements whose results never come while `hang` is set, as a query lost with its request.
		let hang = false;
		let clock = 10_000_000;
		const control = new ControlVersion(drizzle(hangable(env.DB, () => hang)), 1000, () => clock);
		const store = new KeyStore(drizzle(env.DB), control, undefined, () => clock);
		const { key, info } = await store.create({ name: "watched", scopes: ["read"], datasets: null, rateLimit: null, expiresAt: null });
		expect((await store.authenticate(key))?.id).toBe(info.id);
		hang = true;
		clock += 1001;
		// This request's check never answers (its own request is left waiting, as a cancelled one would be).
		void store.authenticate(key);
		hang = false;
		const elsewhere = new KeyStore(drizzle(env.DB), new ControlVersion(drizzle(env.DB), 1000), undefined);
		expect(await elsewhere.revoke(info.id)).toBe(true);
		clock += 1001;
		expect(await store.authenticate(key)).toBeNull();
	});
});

describe("a key lookup that never answers", () => {
	it("is not waited for by later requests of its hash prefix once its bound has passed", async () => {
		let hang = false;
		const tokens: string[] = [];
		for (let i = 0; tokens.length < 2; i++) {
			const t = `hp_lost_${i}`;
			if ((await sha256Hex(t)).startsWith("def")) tokens.push(t);
		}
		let clock = 20_000_000;
		const control = new ControlVersion(drizzle(env.DB), 60_000, () => clock);
		const store = new KeyStore(drizzle(hangable(env.DB, () => hang)), control, undefined, () => clock);
		await control.ensureCurrent();
		hang = true;
		void store.authenticate(tokens[0] as string);
		await new Promise((r) => setTimeout(r, 20));
		hang = false;
		clock += 2001;
		const started = Date.now();
		expect(await store.authenticate(tokens[1] as string)).toBeNull();
		expect(Date.now() - started).toBeLessThan(1000);
	});
});
