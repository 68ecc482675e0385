/**
 * Auth on every route, from one table: no key, a malformed header, an unknown key, a revoked key,
 * a key without the scope, a key with exactly the scope, and the admin key. Then the limits of
 * dataset-scoped keys, and how keys are stored.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
	applyDirect,
	type CreatedKey,
	call,
	createDataset,
	createKey,
	DLQ,
	d1Count,
	d1Record,
	deadLetterByMessageId,
	env,
	eventsBody,
	expectJson,
	expectProblem,
	getRecord,
	message,
	postEvents,
	revokeKey,
	runQueue,
	type Scope,
	sleep,
	staysFalse,
	uniqueName,
	userSpec,
	waitForD1,
} from "./helpers";

interface RouteCase {
	method: string;
	/** Route pattern, for test names. */
	route: string;
	scope: Scope;
	/** Builds one request; routes whose success consumes a resource make a fresh one each time. */
	build: () => Promise<{ path: string; json?: unknown }>;
	/** Status the admin key (and a key with exactly the scope) gets. */
	ok: number;
	/**
	 * What a key with the route's scope (admin for admin routes) but limited to another dataset gets:
	 * a status, and for routes that answer it, a check that nothing of the fixture dataset leaked or changed.
	 */
	limited: { status: number; check?: (body: unknown) => void | Promise<void> };
}

// Fixtures shared by the table, made once in beforeAll.
let dataset = "";
/** Another dataset: what the limited keys are limited to. */
let other = "";
/** A dataset with an ingest mapping, for the log-shipper route. */
let ingestDataset = "";
/** Dead letters of `dataset` that limited keys must never replay (unreplayed) or purge (replayed). */
let replayProbe = "";
let purgeProbe = "";
const recordKey = "u1";

const ROUTES: RouteCase[] = [
	{
		method: "PUT",
		route: "/v1/datasets/:name",
		scope: "admin",
		ok: 201,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${uniqueName()}`, json: userSpec() }),
	},
	{
		method: "GET",
		route: "/v1/datasets",
		scope: "read",
		ok: 200,
		limited: { status: 200, check: (b) => expect((b as { datasets: { name: string }[] }).datasets.map((d) => d.name)).not.toContain(dataset) },
		build: async () => ({ path: "/v1/datasets" }),
	},
	{ method: "GET", route: "/v1/datasets/:name", scope: "read", ok: 200, limited: { status: 403 }, build: async () => ({ path: `/v1/datasets/${dataset}` }) },
	{
		method: "GET",
		route: "/v1/datasets/:name/records/:key",
		scope: "read",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${dataset}/records/${recordKey}` }),
	},
	{
		method: "GET",
		route: "/v1/datasets/:name/schema",
		scope: "read",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${dataset}/schema` }),
	},
	{
		method: "GET",
		route: "/v1/datasets/:name/records",
		scope: "read",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${dataset}/records?limit=5` }),
	},
	{
		method: "POST",
		route: "/v1/datasets/:name/import",
		scope: "write",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${dataset}/import`, json: [{ user_id: uniqueName("k"), age: 1 }] }),
	},
	{
		method: "POST",
		route: "/v1/datasets/:name/ingest",
		scope: "write",
		ok: 202,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${ingestDataset}/ingest`, json: [{ u: uniqueName("k"), age: 1 }] }),
	},
	{
		method: "POST",
		route: "/v1/datasets/:name/rebuild",
		scope: "admin",
		ok: 202,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${dataset}/rebuild` }),
	},
	{
		method: "GET",
		route: "/v1/datasets/:name/rebuild",
		scope: "admin",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${dataset}/rebuild` }),
	},
	{ method: "POST", route: "/v1/rebuild", scope: "admin", ok: 202, limited: { status: 403 }, build: async () => ({ path: "/v1/rebuild?mode=drop" }) },
	{
		method: "POST",
		route: "/v1/lookup",
		scope: "read",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: "/v1/lookup", json: { requests: [{ dataset, keys: [recordKey] }] } }),
	},
	{
		method: "POST",
		route: "/v1/events",
		scope: "write",
		ok: 202,
		// Every event is for a dataset out of bounds: a 403 naming it, with the rejections by index.
		limited: {
			status: 403,
			check: (b) => {
				expect((b as { detail: string }).detail).toContain(`may not write to dataset "${dataset}"`);
				expect((b as { errors: { detail: string }[] }).errors[0]?.detail).toMatch(/may not write/);
			},
		},
		build: async () => ({ path: "/v1/events", json: [{ dataset, key: uniqueName("k"), op: "upsert", value: { age: 1 } }] }),
	},
	{
		method: "POST",
		route: "/v1/keys",
		scope: "admin",
		ok: 201,
		// The fixture creates a key for every dataset, which a key limited to some may not. Its rate limit
		// is as tight as the rate-limited key's below, which may create only keys limited no looser.
		limited: { status: 403 },
		build: async () => ({ path: "/v1/keys", json: { name: uniqueName("key"), scopes: ["read"], rate_limit: { requests: 1, period_seconds: 3600 } } }),
	},
	{
		method: "GET",
		route: "/v1/keys",
		scope: "admin",
		ok: 200,
		limited: {
			status: 200,
			check: (b) => {
				for (const k of (b as { keys: { datasets: string[] | null }[] }).keys) expect(k.datasets).toEqual([other]);
			},
		},
		build: async () => ({ path: "/v1/keys" }),
	},
	{
		method: "DELETE",
		route: "/v1/keys/:id",
		scope: "admin",
		ok: 204,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/keys/${(await createKey(["read"])).id}` }),
	},
	{ method: "GET", route: "/v1/stats", scope: "admin", ok: 200, limited: { status: 403 }, build: async () => ({ path: "/v1/stats" }) },
	{
		method: "GET",
		route: "/v1/dead-letters",
		scope: "admin",
		ok: 200,
		limited: {
			status: 200,
			check: (b) => {
				for (const d of (b as { dead_letters: { datasets: string[] | null }[] }).dead_letters) expect(d.datasets).toEqual([other]);
			},
		},
		build: async () => ({ path: "/v1/dead-letters?limit=500" }),
	},
	{
		method: "POST",
		route: "/v1/dead-letters/:id/replay",
		scope: "admin",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/dead-letters/${await deadLetterFixture()}/replay` }),
	},
	{
		method: "GET",
		route: "/v1/dead-letters/:id",
		scope: "admin",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/dead-letters/${await deadLetterFixture()}` }),
	},
	{
		method: "DELETE",
		route: "/v1/dead-letters/:id",
		scope: "admin",
		ok: 204,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/dead-letters/${await deadLetterFixture()}` }),
	},
	{
		method: "POST",
		route: "/v1/dead-letters/replay",
		scope: "admin",
		ok: 200,
		// Bulk replay within the key's bounds: the fixture dataset's dead letters are left alone.
		limited: { status: 200, check: async () => expect((await deadLetterByMessageId(replayProbe))?.replayed_at).toBeNull() },
		build: async () => ({ path: "/v1/dead-letters/replay?limit=10" }),
	},
	{
		method: "DELETE",
		route: "/v1/dead-letters",
		scope: "admin",
		ok: 200,
		limited: { status: 200, check: async () => expect(await deadLetterByMessageId(purgeProbe)).not.toBeNull() },
		build: async () => ({ path: "/v1/dead-letters?limit=10&replayed=true" }),
	},
	{
		method: "POST",
		route: "/v1/datasets/:name/search",
		scope: "read",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${await searchableDataset()}/search`, json: { filter: {} } }),
	},
	{
		method: "GET",
		route: "/v1/datasets/:name/search",
		scope: "read",
		ok: 200,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${await searchableDataset()}/search` }),
	},
	{
		method: "POST",
		route: "/v1/datasets/:name/search/reindex",
		scope: "admin",
		ok: 202,
		limited: { status: 403 },
		build: async () => ({ path: `/v1/datasets/${await searchableDataset()}/search/reindex` }),
	},
];

/** A searchable dataset for the search routes, made on first use. */
let searchable = "";
async function searchableDataset(): Promise<string> {
	searchable ||= await createDataset({ ...userSpec(), search: { text: ["name"], filters: ["age"] } } as never);
	return searchable;
}

/** A fresh dead letter of the fixture dataset; returns its id. */
async function deadLetterFixture(): Promise<number> {
	const msg = message(eventsBody([{ id: uniqueName("e"), dataset, key: uniqueName("k"), op: "upsert", value: { age: 2 }, time: Date.now() }]));
	await runQueue(DLQ, [msg]);
	const row = await deadLetterByMessageId(msg.id);
	if (!row) throw new Error("fixture: the dead letter was not stored");
	return row.id;
}

const MALFORMED_AUTH = ["Basic dGVzdC1hZG1pbi1rZXk6", "Bearer", "Bearer two tokens", "test-admin-key", "Token test-admin-key", "Bearer\ttest-admin-key extra"];

/** A key holding every scope except the one the route needs (admin implies all, so it is left out too). */
const lackingScopes = (scope: Scope): Scope[] => (scope === "admin" ? ["read", "write"] : scope === "read" ? ["write"] : ["read"]);

const keys: Partial<Record<"revoked" | "admin" | "read" | "write" | "readWrite", CreatedKey>> = {};
const key = (k: keyof typeof keys) => {
	const v = keys[k];
	if (!v) throw new Error(`fixture key ${k} missing`);
	return v.key;
};

beforeAll(async () => {
	dataset = await createDataset();
	other = await createDataset();
	ingestDataset = await createDataset({ ...userSpec(), ingest: { key: "/u" } } as never);
	await applyDirect([{ id: uniqueName("e"), dataset, key: recordKey, op: "upsert", value: { age: 40 }, time: Date.now() }]);
	const probes = [0, 1].map(() =>
		message(eventsBody([{ id: uniqueName("e"), dataset, key: uniqueName("k"), op: "upsert", value: { age: 3 }, time: Date.now() }])),
	);
	await runQueue(DLQ, probes);
	replayProbe = probes[0]?.id as string;
	purgeProbe = probes[1]?.id as string;
	// Replayed already, so a purge of replayed letters would take it if it reached this dataset.
	await call("POST", `/v1/dead-letters/${(await deadLetterByMessageId(purgeProbe))?.id}/replay`);
	keys.revoked = await createKey(["read", "write", "admin"]);
	await revokeKey(keys.revoked.id);
	keys.admin = await createKey(["admin"]);
	keys.read = await createKey(["read"]);
	keys.write = await createKey(["write"]);
	keys.readWrite = await createKey(["read", "write"]);
});

/** Creates a key with options beyond scopes and datasets (rate_limit, expires_at). */
async function createKeyWith(body: Record<string, unknown>): Promise<CreatedKey> {
	return expectJson<CreatedKey>(await call("POST", "/v1/keys", { json: { name: uniqueName("key"), ...body } }), 201);
}

async function send(rc: RouteCase, authorization: string | null): Promise<Response> {
	const req = await rc.build();
	return call(rc.method, req.path, { key: null, json: req.json, headers: authorization === null ? {} : { authorization } });
}

describe.each(ROUTES)("$method $route (scope $scope)", (rc) => {
	describe("security", () => {
		it("no Authorization header -> 401 problem with a Bearer challenge", async () => {
			const res = await send(rc, null);
			const p = await expectProblem(res, 401);
			expect(p.detail).toMatch(/Authorization/);
			expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
		});

		it.each(MALFORMED_AUTH)("malformed Authorization %j -> 401 problem", async (header) => {
			const res = await send(rc, header);
			await expectProblem(res, 401);
			expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
		});

		it("unknown key -> 401 problem", async () => {
			const res = await send(rc, "Bearer hp_this_key_was_never_issued_0123456789");
			const p = await expectProblem(res, 401);
			expect(p.detail).toMatch(/unknown or revoked/);
			expect(res.headers.get("www-authenticate")).toMatch(/invalid_token/);
		});

		it("revoked key -> 401 problem", async () => {
			await expectProblem(await send(rc, `Bearer ${key("revoked")}`), 401);
		});

		it(`a key without the "${rc.scope}" scope -> 403 problem naming the scope`, async () => {
			const lacking = await createKey(lackingScopes(rc.scope));
			const p = await expectProblem(await send(rc, `Bearer ${lacking.key}`), 403);
			expect(p.detail).toContain(`"${rc.scope}"`);
		});

		it(`a "${rc.scope}" key limited to another dataset -> ${rc.limited.status}, and it reaches nothing of this one`, async () => {
			const limited = await createKey([rc.scope], [other]);
			const res = await send(rc, `Bearer ${limited.key}`);
			const text = await res.text();
			expect(res.status, text).toBe(rc.limited.status);
			if (res.status === 403) expect(JSON.parse(text).detail).toMatch(/limited to dataset|unlimited|may not/);
			await rc.limited.check?.(text ? JSON.parse(text) : null);
		});

		it("an expired key -> 401 problem saying it expired", async () => {
			const expiring = await createKeyWith({ scopes: [rc.scope], expires_at: new Date(Date.now() + 1500).toISOString() });
			await sleep(1600);
			const res = await send(rc, `Bearer ${expiring.key}`);
			const p = await expectProblem(res, 401);
			expect(p.detail).toMatch(/expired at/);
			expect(res.headers.get("www-authenticate")).toMatch(/invalid_token/);
		});

		it("a key past its rate limit -> 429 problem with Retry-After", async () => {
			const limitedRate = await createKeyWith({ scopes: [rc.scope], rate_limit: { requests: 1, period_seconds: 3600 } });
			expect((await send(rc, `Bearer ${limitedRate.key}`)).status).toBe(rc.ok);
			const res = await send(rc, `Bearer ${limitedRate.key}`);
			const p = await expectProblem(res, 429);
			expect(p.detail).toMatch(/rate limit of 1 requests per 3600 s/);
			expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		});
	});

	describe("happy", () => {
		it(`the bootstrap admin key -> ${rc.ok}`, async () => {
			const res = await send(rc, "Bearer test-admin-key");
			expect(res.status, await res.clone().text()).toBe(rc.ok);
		});

		it(`a stored key with exactly the "${rc.scope}" scope -> ${rc.ok}`, async () => {
			const res = await send(rc, `Bearer ${key(rc.scope)}`);
			expect(res.status, await res.clone().text()).toBe(rc.ok);
		});

		it("the scheme is case-insensitive (bearer)", async () => {
			const res = await send(rc, "bearer test-admin-key");
			expect(res.status).toBe(rc.ok);
		});
	});
});

describe("requests refused by auth change nothing", () => {
	it("a 401/403 PUT /v1/datasets/:name does not create the dataset", async () => {
		const name = uniqueName();
		await expectProblem(await call("PUT", `/v1/datasets/${name}`, { key: null, json: userSpec() }), 401);
		await expectProblem(await call("PUT", `/v1/datasets/${name}`, { key: key("readWrite"), json: userSpec() }), 403);
		await expectProblem(await call("GET", `/v1/datasets/${name}`), 404);
	});

	it("a 403 POST /v1/events enqueues nothing", async () => {
		const k = uniqueName("k");
		await expectProblem(await call("POST", "/v1/events", { key: key("read"), json: [{ dataset, key: k, op: "upsert", value: { age: 9 } }] }), 403);
		// The local queue delivers within about a second: a wrongly queued event would land within this window.
		await staysFalse(async () => (await d1Record(dataset, k)) !== null, 2500, "the refused event landing");
	});
});

describe("key lifecycle", () => {
	it("a revoked key stops working on the very next request", async () => {
		const k = await createKey(["read"]);
		expect((await call("GET", "/v1/datasets", { key: k.key })).status).toBe(200);
		await revokeKey(k.id);
		await expectProblem(await call("GET", "/v1/datasets", { key: k.key }), 401);
		// Revoking twice is a 404: there is no active key with that id any more.
		await expectProblem(await call("DELETE", `/v1/keys/${k.id}`), 404);
	});

	it("stored keys are hashed: D1 holds the SHA-256 of the secret, never the secret", async () => {
		const k = await createKey(["read"]);
		const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(k.key)));
		const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
		const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(k.id).first<Record<string, unknown>>();
		expect(row?.key_hash).toBe(hex);
		for (const v of Object.values(row ?? {})) expect(String(v)).not.toContain(k.key);
	});

	it("GET /v1/keys lists keys without their secrets or hashes; revoked ones only on request", async () => {
		const k = await createKey(["write"], [dataset]);
		await revokeKey(k.id);
		const live = await createKey(["read"]);
		const { keys: listed } = await expectJson<{ keys: Record<string, unknown>[] }>(await call("GET", "/v1/keys"), 200);
		expect(listed.find((x) => x.id === k.id)).toBeUndefined();
		expect(listed.find((x) => x.id === live.id)).toEqual({
			id: live.id,
			name: expect.any(String),
			scopes: ["read"],
			datasets: null,
			rate_limit: null,
			expires_at: null,
			created_at: expect.any(String),
			revoked_at: null,
		});
		const all = await expectJson<{ keys: Record<string, unknown>[] }>(await call("GET", "/v1/keys?include_revoked=true"), 200);
		expect(all.keys.find((x) => x.id === k.id)).toMatchObject({ scopes: ["write"], datasets: [dataset], revoked_at: expect.any(String) });
		const text = JSON.stringify(all);
		expect(text).not.toContain(live.key);
		expect(text).not.toContain("key_hash");
	});

	it("POST /v1/keys validates its body", async () => {
		for (const body of [
			{ name: "x", scopes: [] },
			{ name: "x", scopes: ["root"] },
			{ name: "", scopes: ["read"] },
			{ scopes: ["read"] },
			{ name: "x", scopes: ["read"], datasets: [] },
			{ name: "x", scopes: ["read"], extra: 1 },
		]) {
			await expectProblem(await call("POST", "/v1/keys", { json: body }), 400);
		}
	});
});

describe("dataset-limited keys", () => {
	let a = "";
	let b = "";
	beforeAll(async () => {
		a = await createDataset();
		b = await createDataset();
		const now = Date.now();
		await applyDirect([
			{ id: uniqueName("e"), dataset: a, key: "k1", op: "upsert", value: { age: 1 }, time: now },
			{ id: uniqueName("e"), dataset: b, key: "k1", op: "upsert", value: { age: 2 }, time: now },
		]);
	});

	it("a read key limited to A reads A's records", async () => {
		const k = await createKey(["read"], [a]);
		const body = await expectJson(await getRecord(a, "k1", "", { key: k.key }), 200);
		expect(body).toMatchObject({ dataset: a, key: "k1", value: { age: 1 } });
	});

	it("a read key limited to A gets 403 on B's record, on B's spec, and on a lookup mentioning B", async () => {
		const k = await createKey(["read"], [a]);
		let p = await expectProblem(await getRecord(b, "k1", "", { key: k.key }), 403);
		expect(p.detail).toContain(b);
		p = await expectProblem(await call("GET", `/v1/datasets/${b}`, { key: k.key }), 403);
		expect(p.detail).toContain(b);
		p = await expectProblem(
			await call("POST", "/v1/lookup", {
				key: k.key,
				json: {
					requests: [
						{ dataset: a, keys: ["k1"] },
						{ dataset: b, keys: ["k1"] },
					],
				},
			}),
			403,
		);
		expect(p.detail).toContain(b);
		expect(p.detail).not.toContain(`${a},`);
	});

	it("a read key limited to A sees only A in GET /v1/datasets", async () => {
		const k = await createKey(["read"], [a]);
		const { datasets } = await expectJson<{ datasets: { name: string }[] }>(await call("GET", "/v1/datasets", { key: k.key }), 200);
		expect(datasets.map((d) => d.name)).toEqual([a]);
	});

	it("a limited key gets 403, not 404, for a dataset that does not exist (no existence oracle)", async () => {
		const k = await createKey(["read"], [a]);
		await expectProblem(await getRecord(uniqueName("missing"), "k1", "", { key: k.key }), 403);
	});

	it("a write key limited to A gets B's events rejected per item, and only A's reach D1", async () => {
		const k = await createKey(["write"], [a]);
		const ka = uniqueName("k");
		const kb = uniqueName("k");
		const res = await postEvents(
			[
				{ dataset: a, key: ka, op: "upsert", value: { age: 10 } },
				{ dataset: b, key: kb, op: "upsert", value: { age: 20 } },
			],
			k.key,
		);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toHaveLength(1);
		expect(res.rejected[0]?.index).toBe(1);
		expect(res.rejected[0]?.error).toContain(b);
		await waitForD1(a, ka);
		expect(await d1Count(b)).toBe(1); // only the k1 fixture
		await expectProblem(await getRecord(b, kb), 404);
	});

	it("a write key limited to A sending only B's events -> 403 naming B, listing each", async () => {
		const k = await createKey(["write"], [a]);
		const p = await expectProblem(
			await call("POST", "/v1/events", {
				key: k.key,
				json: [
					{ dataset: b, key: "x", op: "upsert", value: { age: 1 } },
					{ dataset: b, key: "y", op: "delete" },
				],
			}),
			403,
		);
		expect(p.detail).toContain(`"${b}"`);
		expect(p.errors?.map((e) => e.pointer)).toEqual(["/0/dataset", "/1/dataset"]);
		for (const e of p.errors ?? []) expect(e.detail).toContain(b);
	});

	// Regression (was a bug): POST /v1/events validates each event against its dataset before checking the key's
	// dataset limit (src/routes/events.ts: validateEvent runs before the principal.datasets check),
	// so a write key limited to A learns whether other datasets exist and, from the unknown-field
	// message ("B has age, name, ..."), their whole schema. The read routes check the limit first
	// (a 403 even for a dataset that does not exist); ingest should too: check the limit as soon as
	// `dataset` is known, before the registry lookup.
	it("a write key limited to A learns nothing about other datasets from rejections", async () => {
		const k = await createKey(["write"], [a]);
		const res = await postEvents(
			[
				{ dataset: a, key: uniqueName("k"), op: "upsert", value: { age: 1 } },
				{ dataset: b, key: "x", op: "upsert", value: { no_such_field: 1 } },
				{ dataset: uniqueName("missing"), key: "x", op: "upsert", value: { age: 1 } },
			],
			k.key,
		);
		expect(res.rejected.map((r) => r.index)).toEqual([1, 2]);
		for (const r of res.rejected) {
			expect(r.error).toMatch(/may not write/);
			expect(r.error).not.toMatch(/does not exist|unknown field|age|emb/);
		}
	});

	// Regression (was a bug): PUT /v1/datasets/:name checks the admin scope but never the key's dataset limit
	// (src/routes/datasets.ts, the PUT handler has no assertDatasetAccess), so an admin key
	// limited to A can create or change any other dataset's spec.
	it("an admin key limited to A cannot create or change dataset B's spec", async () => {
		const k = await createKey(["admin"], [a]);
		const other = uniqueName();
		await expectProblem(await call("PUT", `/v1/datasets/${other}`, { key: k.key, json: userSpec() }), 403);
		await expectProblem(await call("GET", `/v1/datasets/${other}`), 404);
	});

	// Regression (was a bug): POST /v1/keys (src/routes/keys.ts) lets a dataset-limited admin key mint keys with no
	// dataset limit (or any limit), escaping its own limit.
	it("an admin key limited to A cannot mint a key that reaches beyond A", async () => {
		const k = await createKey(["admin"], [a]);
		await expectProblem(await call("POST", "/v1/keys", { key: k.key, json: { name: uniqueName("key"), scopes: ["read"] } }), 403);
		await expectProblem(await call("POST", "/v1/keys", { key: k.key, json: { name: uniqueName("key"), scopes: ["read"], datasets: [b] } }), 403);
	});
});
