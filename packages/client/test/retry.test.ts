// The client's own retry and id logic, against a tiny local HTTP server that answers what each test scripts.
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { Hotpath, HotpathError } from "../src/index.ts";
import { scripted } from "./scripted-server.ts";

const problem = (res: ServerResponse, status: number, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
	res
		.writeHead(status, { "content-type": "application/problem+json", ...headers })
		.end(JSON.stringify({ type: `https://hotpath.dev/problems/x${status}`, title: `T${status}`, status, detail: `D${status}`, ...extra }));
const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

const spec = { name: "d", key: "k", fields: {}, ttl_seconds: 60 };

describe("retry policy", () => {
	it("retries a 429 after the Retry-After it was given, then answers", async () => {
		const { url, seen } = await scripted((_req, n, res) => (n === 0 ? problem(res, 429, {}, { "retry-after": "1" }) : json(res, 200, spec)));
		const hp = new Hotpath({ url, key: "k1", retryBaseMs: 1 });
		expect(await hp.datasets.get("d")).toEqual(spec);
		expect(seen).toHaveLength(2);
		const gap = (seen[1]?.at ?? 0) - (seen[0]?.at ?? 0);
		expect(gap).toBeGreaterThanOrEqual(950);
		expect(gap).toBeLessThan(3000);
		expect(seen[1]?.headers.authorization).toBe("Bearer k1");
	});

	it("tells onRetry of each wait before it waits: the failed attempt's error and the Retry-After", async () => {
		const { url } = await scripted((_req, n, res) => (n < 2 ? problem(res, 429, {}, { "retry-after": "1" }) : json(res, 200, spec)));
		const notices: { status: number; attempt: number; waitMs: number }[] = [];
		const hp = new Hotpath({ url, retryBaseMs: 1, onRetry: (r) => notices.push({ status: r.error.status, attempt: r.attempt, waitMs: r.waitMs }) });
		expect(await hp.datasets.get("d")).toEqual(spec);
		expect(notices).toEqual([
			{ status: 429, attempt: 1, waitMs: 1000 },
			{ status: 429, attempt: 2, waitMs: 1000 },
		]);
	});

	it("retries a 503 with exponential back-off when there is no Retry-After", async () => {
		const { url, seen } = await scripted((_req, n, res) => (n < 2 ? problem(res, 503) : json(res, 200, spec)));
		const hp = new Hotpath({ url, retryBaseMs: 100 });
		await hp.datasets.get("d");
		expect(seen).toHaveLength(3);
		// Back-off with jitter: the first wait is 50-100 ms, the second 100-200 ms.
		const g1 = (seen[1]?.at ?? 0) - (seen[0]?.at ?? 0);
		const g2 = (seen[2]?.at ?? 0) - (seen[1]?.at ?? 0);
		expect(g1).toBeGreaterThanOrEqual(45);
		expect(g2).toBeGreaterThanOrEqual(95);
	});

	it("gives up after `retries` and throws the last problem, with retryAfter", async () => {
		const { url, seen } = await scripted((_req, _n, res) => problem(res, 429, {}, { "retry-after": "0" }));
		const hp = new Hotpath({ url, retries: 2 });
		const err = await hp.datasets.list().catch((e: unknown) => e);
		expect(err).toBeInstanceOf(HotpathError);
		expect(err).toMatchObject({ status: 429, retryAfter: 0, problem: { title: "T429", detail: "D429", status: 429 } });
		expect(seen).toHaveLength(3);
	});

	it("does not wait for a Retry-After beyond maxRetryDelayMs", async () => {
		const { url, seen } = await scripted((_req, _n, res) => problem(res, 429, {}, { "retry-after": "3600" }));
		const hp = new Hotpath({ url, maxRetryDelayMs: 5_000 });
		const started = Date.now();
		await expect(hp.datasets.list()).rejects.toMatchObject({ status: 429, retryAfter: 3600 });
		expect(Date.now() - started).toBeLessThan(1000);
		expect(seen).toHaveLength(1);
	});

	it("never retries other 4xx, and carries the whole problem", async () => {
		const { url, seen } = await scripted((_req, _n, res) =>
			problem(res, 400, { errors: [{ pointer: "/requests/0/dataset", detail: "no such dataset" }], request_id: "r1", instance: "/v1/lookup" }),
		);
		const hp = new Hotpath({ url });
		const err = (await hp.lookup([{ dataset: "x", keys: ["a"] }]).catch((e: unknown) => e)) as HotpathError;
		expect(err).toBeInstanceOf(HotpathError);
		expect(err.status).toBe(400);
		expect(err.title).toBe("T400");
		expect(err.detail).toBe("D400");
		expect(err.errors).toEqual([{ pointer: "/requests/0/dataset", detail: "no such dataset" }]);
		expect(err.problem.request_id).toBe("r1");
		expect(err.message).toBe("T400: D400");
		expect(seen).toHaveLength(1);
	});

	it("turns a non-problem error body into a HotpathError too", async () => {
		const { url } = await scripted((_req, _n, res) => res.writeHead(502, { "content-type": "text/html" }).end("<h1>bad gateway</h1>"));
		const hp = new Hotpath({ url });
		await expect(hp.datasets.list()).rejects.toMatchObject({ status: 502, problem: { status: 502, detail: "<h1>bad gateway</h1>" } });
	});

	it("retries network errors for idempotent calls only", async () => {
		// The first connection is cut without an answer.
		const { url, seen } = await scripted((req, n, res) => (n === 0 ? res.socket?.destroy() : json(res, req.method === "POST" ? 201 : 200, { datasets: [] })));
		const hp = new Hotpath({ url, retryBaseMs: 1 });
		expect(await hp.datasets.list()).toEqual([]);
		expect(seen).toHaveLength(2);

		seen.length = 0;
		const created = await hp.keys.create({ name: "x", scopes: ["read"] }).catch((e: unknown) => e);
		expect(created).toBeInstanceOf(HotpathError);
		expect(created).toMatchObject({ status: 0, problem: { title: "Network error" } });
		expect(seen).toHaveLength(1);
	});

	it("does not resend a call that is not idempotent after a 503 (the server may have done it), but does after a 429", async () => {
		// D1 failing a request is a 503 "did not answer", which it may say after the insert committed:
		// a resend of keys.create would then make a second key whose secret nobody ever sees.
		let limitedOnce = false;
		const { url, seen } = await scripted((req, _n, res) => {
			if (!req.body.includes('"limited"')) return problem(res, 503, {}, { "retry-after": "0" });
			if (!limitedOnce) {
				limitedOnce = true;
				return problem(res, 429, {}, { "retry-after": "0" });
			}
			return json(res, 201, { id: "key_1", name: "limited", key: "hp_x" });
		});
		const hp = new Hotpath({ url, retryBaseMs: 1 });
		await expect(hp.keys.create({ name: "x", scopes: ["read"] })).rejects.toMatchObject({ status: 503 });
		expect(seen).toHaveLength(1);
		// A rate limit's 429 comes before the route does anything: the resend is safe.
		seen.length = 0;
		expect(await hp.keys.create({ name: "limited", scopes: ["read"] })).toMatchObject({ id: "key_1" });
		expect(seen).toHaveLength(2);
	});

	it("resends a rebuild start after a 503, a 429 or a lost answer: a repeated POST answers the running rebuild", async () => {
		const running = {
			dataset: "d",
			mode: "refill",
			status: "running",
			keys_done: 0,
			pages_done: 0,
			total_keys: 9,
			started_at: "2026-11-28T00:00:00.000Z",
			finished_at: null,
		};
		const { url, seen } = await scripted((req, n, res) => {
			if (n === 0) return problem(res, 503, {}, { "retry-after": "0" });
			if (n === 1) return problem(res, 429, {}, { "retry-after": "0" });
			if (n === 2) return res.socket?.destroy();
			return json(res, 202, req.url.startsWith("/v1/rebuild") ? { rebuilds: [running] } : running);
		});
		const hp = new Hotpath({ url, retryBaseMs: 1, retries: 3 });
		expect(await hp.rebuild("d", { mode: "refill" })).toEqual(running);
		expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(Array(4).fill("POST /v1/datasets/d/rebuild?mode=refill"));
		// rebuildAll likewise (the script starts over: it counts the requests seen).
		seen.length = 0;
		expect(await hp.rebuildAll()).toEqual([running]);
		expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(Array(4).fill("POST /v1/rebuild"));
	});

	it("takes a 404 to a resent DELETE after a lost answer as done (the lost attempt did it), but not a first 404", async () => {
		// keys.revoke and deadLetters.purge are resent after a lost answer; the server answers the resend
		// 404 ("no active key"), as the first attempt already revoked it: the call succeeded.
		const { url, seen } = await scripted((req, _n, res) => {
			if (req.url.includes("typo")) return problem(res, 404);
			if (seen.filter((s) => s.url === req.url).length === 1) return res.socket?.destroy();
			return req.url.includes("elsewhere")
				? problem(res, 404, { type: "https://hotpath.dev/problems/not-found", detail: `no route for DELETE ${req.url}` })
				: problem(res, 404, { type: "https://hotpath.dev/problems/not-found", detail: "no active key" });
		});
		const hp = new Hotpath({ url, retryBaseMs: 1 });
		await expect(hp.keys.revoke("key_1")).resolves.toBeUndefined();
		await expect(hp.deadLetters.purge(7)).resolves.toBeUndefined();
		expect(seen.map((s) => s.method)).toEqual(["DELETE", "DELETE", "DELETE", "DELETE"]);
		await expect(hp.keys.revoke("key_typo")).rejects.toMatchObject({ status: 404 });
		// A 404 that is no route (a base URL that is not this Hotpath's) is not taken for done.
		await expect(hp.keys.revoke("elsewhere")).rejects.toMatchObject({ status: 404 });
	});

	it("times out an attempt after timeoutMs", async () => {
		const { url, seen } = await scripted((req, n, res) => (n === 0 && req.method === "GET" ? undefined : json(res, 200, { datasets: [] })));
		const hp = new Hotpath({ url, timeoutMs: 200, retryBaseMs: 1 });
		// Idempotent: the timed-out attempt is retried.
		expect(await hp.datasets.list()).toEqual([]);
		expect(seen).toHaveLength(2);
	});

	it("answers health() for a 503 without retrying", async () => {
		const body = { status: "degraded", tiers: { l0: "up", redis: "off", kv: "up", d1: "down" } };
		const { url, seen } = await scripted((_req, _n, res) => json(res, 503, body));
		expect(await new Hotpath({ url, key: "k" }).health()).toEqual(body);
		expect(seen).toHaveLength(1);
		expect(seen[0]?.headers.authorization).toBeUndefined();
	});
});

describe("ids are set before the first attempt, so retries are safe", () => {
	it("push: the same ids on every attempt, the caller's own ids kept, the caller's array untouched", async () => {
		const { url, seen } = await scripted((_req, n, res) => (n === 0 ? problem(res, 503) : json(res, 202, { accepted: 3, rejected: [] })));
		const hp = new Hotpath({ url, retryBaseMs: 1 });
		const events = [
			{ dataset: "d", key: "a", op: "upsert" as const, value: { x: 1 } },
			{ id: "mine", dataset: "d", key: "b", op: "delete" as const },
			{ dataset: "d", key: "c", op: "patch" as const, value: { x: 2 } },
		];
		const result = await hp.push(events);
		expect(result.accepted).toBe(3);
		expect(seen).toHaveLength(2);
		expect(seen[0]?.body).toBe(seen[1]?.body);
		const sent = JSON.parse(seen[0]?.body ?? "[]") as { id: string }[];
		expect(sent.map((e) => e.id)).toEqual(result.ids);
		expect(sent[1]?.id).toBe("mine");
		// A random v4 UUID for the call, then the index: the ids of one call sort in the order given.
		expect(sent[0]?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-000000$/);
		expect(sent[2]?.id).toBe(`${sent[0]?.id.slice(0, 36)}-000002`);
		expect(events[0]).not.toHaveProperty("id");
		expect(seen[0]?.headers["content-type"]).toBe("application/json");
		// Events without event_time: an Idempotency-Key of the call's own, the same on the retry, so
		// the server gives the retry's events the first attempt's receipt time.
		expect(seen[0]?.headers["idempotency-key"]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
		expect(seen[1]?.headers["idempotency-key"]).toBe(seen[0]?.headers["idempotency-key"]);
	});

	it("push: each call has its own key, and none is sent when every event has its event_time", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 202, { accepted: 1, rejected: [] }));
		const hp = new Hotpath({ url });
		await hp.push([{ dataset: "d", key: "a", op: "upsert", value: {} }]);
		await hp.push([{ dataset: "d", key: "a", op: "upsert", value: {} }]);
		await hp.push([{ dataset: "d", key: "a", op: "upsert", value: {}, event_time: 1_700_000_000_000 }]);
		expect(seen[0]?.headers["idempotency-key"]).toBeTruthy();
		expect(seen[1]?.headers["idempotency-key"]).toBeTruthy();
		expect(seen[1]?.headers["idempotency-key"]).not.toBe(seen[0]?.headers["idempotency-key"]);
		expect(seen[2]?.headers).not.toHaveProperty("idempotency-key");
	});

	it("push with an idempotency key sends the header and leaves ids to the server", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 202, { accepted: 1, rejected: [] }));
		await new Hotpath({ url }).push([{ dataset: "d", key: "a", op: "upsert", value: {} }], { idempotencyKey: "batch-7" });
		expect(seen[0]?.headers["idempotency-key"]).toBe("batch-7");
		expect(JSON.parse(seen[0]?.body ?? "[]")).toEqual([{ dataset: "d", key: "a", op: "upsert", value: {} }]);
	});

	it("import: the same _ids on every attempt, after a lost answer too", async () => {
		const { url, seen } = await scripted((_req, n, res) => (n === 0 ? res.socket?.destroy() : json(res, 200, { imported: 2, unchanged: 0, rejected: [] })));
		const hp = new Hotpath({ url, retryBaseMs: 1 });
		const result = await hp.import("items", [
			{ item_id: "a", price: 1 },
			{ item_id: "b", price: 2, _id: "row-b" },
		]);
		expect(result).toEqual({ imported: 2, unchanged: 0, rejected: [] });
		expect(seen).toHaveLength(2);
		expect(seen[0]?.url).toBe("/v1/datasets/items/import");
		expect(seen[0]?.body).toBe(seen[1]?.body);
		const rows = JSON.parse(seen[1]?.body ?? "[]") as { _id: string }[];
		expect(rows[0]?._id).toMatch(/^[0-9a-f-]{36}-000000$/);
		expect(rows[1]?._id).toBe("row-b");
		// Rows without _event_time: the call's own Idempotency-Key, the same on the retry.
		expect(seen[0]?.headers["idempotency-key"]).toMatch(/^[0-9a-f-]{36}$/);
		expect(seen[1]?.headers["idempotency-key"]).toBe(seen[0]?.headers["idempotency-key"]);
	});
});

describe("requests", () => {
	it("encodes path segments and read options", async () => {
		const { url, seen } = await scripted((_req, _n, res) =>
			json(res, 200, { dataset: "d", key: "a/b c", status: "present", value: {}, event_time: "2026-01-01T00:00:00.000Z", age_ms: 1 }),
		);
		await new Hotpath({ url }).get("d", "a/b c", { fields: ["x", "y"], maxStaleness: 5, ifStale: "omit", asOf: new Date(0) });
		expect(seen[0]?.url).toBe("/v1/datasets/d/records/a%2Fb%20c?fields=x%2Cy&max_staleness=5&if_stale=omit&as_of=1970-01-01T00%3A00%3A00.000Z");
	});

	it("refuses an invalid Date as a time with a HotpathError naming the option, sending nothing (it was a RangeError)", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 200, {}));
		const hp = new Hotpath({ url });
		const bad = new Date(Number.NaN);
		const cases: [string, () => Promise<unknown>][] = [
			["asOf", () => hp.get("d", "a", { asOf: bad })],
			["asOf", () => hp.lookup([{ dataset: "d", keys: ["a"] }], { asOf: bad })],
			["since", () => hp.history("d", "a", { since: bad })],
			["until", () => hp.history("d", "a", { until: bad })],
			["expires_at", () => hp.keys.create({ name: "k", scopes: ["read"], expires_at: bad })],
		];
		for (const [option, call] of cases) {
			const err = await call().catch((e: unknown) => e);
			expect(err).toBeInstanceOf(HotpathError);
			expect((err as HotpathError).detail).toContain(option);
		}
		expect(seen).toHaveLength(0);
	});

	it("refuses a maxStaleness of NaN or Infinity, which JSON sends as null (no bound at all) in a lookup", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 200, { results: [] }));
		const hp = new Hotpath({ url });
		for (const maxStaleness of [Number.NaN, Number.POSITIVE_INFINITY]) {
			for (const call of [() => hp.lookup([{ dataset: "d", keys: ["a"] }], { maxStaleness }), () => hp.get("d", "a", { maxStaleness })]) {
				const err = await call().catch((e: unknown) => e);
				expect(err).toBeInstanceOf(HotpathError);
				expect((err as HotpathError).detail).toContain("maxStaleness");
			}
		}
		expect(seen).toHaveLength(0);
	});

	it("refuses an asOf of NaN, which JSON sends as null (current values) in a lookup: a point-in-time read must not answer the present", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 200, { results: [] }));
		const hp = new Hotpath({ url });
		const calls = [
			() => hp.lookup([{ dataset: "d", keys: ["a"] }], { asOf: Number.NaN }),
			() => hp.lookup([{ dataset: "d", keys: ["a"], as_of: Number.NaN }]),
			() => hp.get("d", "a", { asOf: Number.NaN }),
			() => hp.history("d", "a", { since: Number.NaN }),
		];
		for (const call of calls) {
			const err = await call().catch((e: unknown) => e);
			expect(err).toBeInstanceOf(HotpathError);
			expect((err as HotpathError).detail).toMatch(/as_?Of|as_of|since/i);
		}
		expect(seen).toHaveLength(0);
	});

	it("sends only the lookup options that were given (the server's schema is strict)", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 200, { results: [] }));
		const hp = new Hotpath({ url });
		await hp.lookup([{ dataset: "d", keys: ["a"] }]);
		await hp.lookup([{ dataset: "d", keys: ["a"] }], { maxStaleness: 0, asOf: 1000 });
		expect(JSON.parse(seen[0]?.body ?? "")).toEqual({ requests: [{ dataset: "d", keys: ["a"] }] });
		expect(JSON.parse(seen[1]?.body ?? "")).toEqual({ requests: [{ dataset: "d", keys: ["a"] }], max_staleness: 0, as_of: 1000 });
	});

	it("follows export cursors until next_cursor is null", async () => {
		const pages: Record<string, unknown> = {
			"": { records: [{ key: "a", value: {}, event_time: "t", event_id: "1" }], next_cursor: "c1" },
			c1: { records: [{ key: "b", value: {}, event_time: "t", event_id: "2" }], next_cursor: null },
		};
		const { url, seen } = await scripted((req, _n, res) => json(res, 200, pages[new URL(req.url, "http://x").searchParams.get("cursor") ?? ""]));
		const keys: string[] = [];
		for await (const r of new Hotpath({ url }).export("d", { pageSize: 1, includeDeleted: true })) keys.push(r.key);
		expect(keys).toEqual(["a", "b"]);
		expect(seen.map((s) => s.url)).toEqual([
			"/v1/datasets/d/records?limit=1&include_deleted=true",
			"/v1/datasets/d/records?limit=1&cursor=c1&include_deleted=true",
		]);
	});

	it("keeps a dead-letter listing's incomplete note (D1 refused: only the letters waiting in KV)", async () => {
		const letter = { id: "kv:m1", queue: "q", message_id: "m1", error: "e", attempts: 1, created_at: "t", replayed_at: null, waiting_in_kv: true };
		const { url } = await scripted((_req, n, res) =>
			json(res, 200, n === 0 ? { dead_letters: [letter], incomplete: "D1 refused the query" } : { dead_letters: [letter] }),
		);
		const hp = new Hotpath({ url });
		const partial = await hp.deadLetters.list();
		expect([...partial]).toEqual([letter]);
		expect(partial.incomplete).toBe("D1 refused the query");
		expect((await hp.deadLetters.list()).incomplete).toBeUndefined();
	});
});
