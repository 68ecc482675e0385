/**
 * The L0 fast lane (src/routes/fast-read.ts) must answer exactly what the records route answers,
 * and must hand every request it is not sure of to the app.
 */
import { createExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { fastRecordRead } from "../../src/routes/fast-read";
import { servicesFor } from "../../src/services";
import { recordCacheKey } from "../../src/storage/cached-record";
import { ADMIN_KEY, BASE, call, createDataset, createKey, env, expectJson, recordPath, revokeKey, seedD1, uniqueName, userSpec } from "./helpers";

const app = createApp();
const services = () => servicesFor(env);
const request = (path: string, headers: Record<string, string> = {}, key: string | null = ADMIN_KEY) =>
	new Request(`${BASE}${path}`, { headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...headers } });
/** The records route's answer, through the app (which never takes the fast lane). */
const viaApp = (req: Request) => app.fetch(req, env, createExecutionContext());
/** The whole worker's answer (lane, then app), as a client gets it. */
const viaWorker = (req: Request) => call(req.method, req.url.slice(BASE.length), { key: null, headers: Object.fromEntries(req.headers) });
/** Reads the worker has answered through the lane, from GET /v1/stats. */
const laneHits = async () => (await expectJson<{ l0: { fast_lane_hits: number } }>(await call("GET", "/v1/stats"), 200)).l0.fast_lane_hits;

let ds: string;
/** A read key, revoked. */
async function revokedKey(): Promise<string> {
	const k = await createKey(["read"]);
	await revokeKey(k.id);
	return k.key;
}

beforeAll(async () => {
	ds = await createDataset(userSpec(3600));
});

/** A key seeded in D1 and read once through the app, so L0 holds a fresh copy. */
async function hotKey(dataset = ds, value: Record<string, unknown> = { age: 41, name: "Zoë ✓", emb: [0.5, -1, 2e-9] }, time = Date.now() - 1500) {
	const key = uniqueName("k");
	await seedD1(dataset, key, value, time);
	expect((await viaApp(request(recordPath(dataset, key)))).status).toBe(200);
	expect(services().reader.l0.get(recordCacheKey(dataset, key), Number.POSITIVE_INFINITY, Date.now())?.state).toBe("fresh");
	return key;
}

describe("the L0 fast lane", () => {
	it("answers a fresh L0 hit with the records route's status, body and headers", async () => {
		const key = await hotKey();
		const fast = await fastRecordRead(request(recordPath(ds, key)), services);
		const slow = await viaApp(request(recordPath(ds, key)));
		expect(fast).toBeInstanceOf(Response);
		const f = fast as Response;
		expect(f.status).toBe(slow.status);
		expect([...f.headers.keys()].sort()).toEqual([...slow.headers.keys()].sort());
		for (const h of ["content-type", "x-hotpath-tier", "etag", "cache-control"]) expect([h, f.headers.get(h)]).toEqual([h, slow.headers.get(h)]);
		expect(f.headers.get("x-hotpath-tier")).toBe("l0");
		expect(f.headers.get("server-timing")).toMatch(/^l0;dur=\d+\.\d\d$/);
		expect(slow.headers.get("server-timing")).toMatch(/^l0;dur=\d+\.\d\d$/);
		expect(f.headers.get("x-request-id")).toMatch(/^[0-9a-f]{16}-[0-9a-z]+$/);
		const fb = (await f.json()) as { age_ms: number };
		const sb = (await slow.json()) as { age_ms: number };
		// age_ms is the only field that moves between two reads: by the milliseconds between them.
		expect(Math.abs(fb.age_ms - sb.age_ms)).toBeLessThan(1000);
		expect({ ...fb, age_ms: 0 }).toEqual({ ...sb, age_ms: 0 });
		expect(fb).toMatchObject({ dataset: ds, key, status: "present", value: { age: 41, name: "Zoë ✓", emb: [0.5, -1, 2e-9] } });
	});

	it("sends the same Cache-Control as the app while a short ttl runs out", async () => {
		const short = await createDataset(userSpec(10));
		// 6.5 s old with a 10 s ttl: at most 3 s left, less than L0's 5 s.
		const key = await hotKey(short, { age: 6 }, Date.now() - 6500);
		const fast = (await fastRecordRead(request(recordPath(short, key)), services)) as Response;
		const slow = await viaApp(request(recordPath(short, key)));
		const maxAge = (r: Response) => Number(/^private, max-age=(\d)$/.exec(r.headers.get("cache-control") ?? "")?.[1]);
		expect(maxAge(fast)).toBeLessThanOrEqual(3);
		// The two answers are computed a few milliseconds apart: a second boundary may fall between.
		expect(maxAge(fast) - maxAge(slow)).toBeGreaterThanOrEqual(0);
		expect(maxAge(fast) - maxAge(slow)).toBeLessThanOrEqual(1);
	});

	it("is the path a plain read of a hot key takes through the worker, counted in /v1/stats", async () => {
		const key = await hotKey();
		const l0Before = services().stats.tiers.l0.hits;
		const before = await laneHits();
		const res = await viaWorker(request(recordPath(ds, key)));
		expect(res.status).toBe(200);
		expect(res.headers.get("x-hotpath-tier")).toBe("l0");
		await res.body?.cancel();
		expect(await laneHits()).toBe(before + 1);
		expect(services().stats.tiers.l0.hits).toBe(l0Before + 1);
	});

	it("serves a key restricted to the dataset, and a read-only key", async () => {
		const key = await hotKey();
		for (const k of [await createKey(["read"]), await createKey(["read"], [ds])]) {
			const res = await fastRecordRead(request(recordPath(ds, key), {}, k.key), services);
			expect(res?.status).toBe(200);
		}
	});

	describe("hands the request to the app, which answers it as before", () => {
		// Each case: the request, and what the whole worker (lane, then app) must answer.
		const cases: { name: string; build: (key: string) => Promise<Request> | Request; status: number; requestId?: string }[] = [
			{ name: "a query string", build: (key) => request(recordPath(ds, key, "fields=age")), status: 200 },
			{ name: "an empty query string", build: (key) => request(`${recordPath(ds, key)}?`), status: 200 },
			{ name: "If-None-Match (a 304 is the app's)", build: (key) => request(recordPath(ds, key), { "if-none-match": "*" }), status: 304 },
			{ name: "a caller's X-Request-Id", build: (key) => request(recordPath(ds, key), { "x-request-id": "trace-1" }), status: 200, requestId: "trace-1" },
			{
				name: "two Authorization headers",
				build: (key) => {
					const h = new Headers();
					h.append("authorization", `Bearer ${ADMIN_KEY}`);
					h.append("authorization", `Bearer ${ADMIN_KEY}`);
					return new Request(`${BASE}${recordPath(ds, key)}`, { headers: h });
				},
				status: 401,
			},
			{ name: "a revoked key", build: async (key) => request(recordPath(ds, key), {}, await revokedKey()), status: 401 },
			{ name: "a percent-encoded path", build: (key) => request(`/v1/datasets/${ds}/records/${key.replace("_", "%5F")}`), status: 200 },
			{ name: "no Authorization", build: (key) => request(recordPath(ds, key), {}, null), status: 401 },
			{ name: "an unknown key", build: (key) => request(recordPath(ds, key), {}, "hp_nobody"), status: 401 },
			{ name: "lower-case 'bearer'", build: (key) => request(recordPath(ds, key), { authorization: `bearer ${ADMIN_KEY}` }, null), status: 200 },
			{ name: 'two spaces after "Bearer"', build: (key) => request(recordPath(ds, key), { authorization: `Bearer  ${ADMIN_KEY}` }, null), status: 200 },
			{ name: "a write-only key", build: async (key) => request(recordPath(ds, key), {}, (await createKey(["write"])).key), status: 403 },
			{ name: "a key for other datasets", build: async (key) => request(recordPath(ds, key), {}, (await createKey(["read"], ["elsewhere"])).key), status: 403 },
			{ name: "a dataset that does not exist", build: (key) => request(recordPath("no_such_dataset", key)), status: 404 },
			{ name: "a key L0 does not hold", build: () => request(recordPath(ds, uniqueName("cold"))), status: 404 },
			{ name: "a trailing slash", build: (key) => request(`${recordPath(ds, key)}/`), status: 404 },
			{ name: "an empty key", build: () => request(`/v1/datasets/${ds}/records/`), status: 404 },
			{
				name: "a key past the size limit, even one L0 holds",
				build: () => {
					const long = "k".repeat(401);
					services().reader.l0.set(recordCacheKey(ds, long), { v: { age: 1 }, t: Date.now(), i: "seed", r: 1 }, Date.now(), Date.now());
					return request(recordPath(ds, long));
				},
				status: 400,
			},
		];
		for (const c of cases) {
			it(c.name, async () => {
				const key = await hotKey();
				const req = await c.build(key);
				expect(await fastRecordRead(req.clone(), services)).toBeUndefined();
				const before = await laneHits();
				const res = await viaWorker(req);
				expect(res.status).toBe(c.status);
				if (c.status === 200) expect(res.headers.get("x-hotpath-tier")).toBe("l0");
				if (c.requestId) expect(res.headers.get("x-request-id")).toBe(c.requestId);
				await res.body?.cancel();
				expect(await laneHits()).toBe(before);
			});
		}

		it("a value older than the dataset's ttl (reported stale by the app)", async () => {
			const short = await createDataset(userSpec(1));
			const key = await hotKey(short, { age: 1 }, Date.now() - 5000);
			expect(await fastRecordRead(request(recordPath(short, key)), services)).toBeUndefined();
			const res = await call("GET", recordPath(short, key));
			expect(((await res.json()) as { status: string }).status).toBe("stale");
		});

		it("a copy L0 keeps past its fresh time, which the app revalidates", async () => {
			const key = uniqueName("old");
			const l0 = services().reader.l0;
			await seedD1(ds, key, { age: 2 });
			// Stored 6 s ago: past L0_TTL_SECONDS (5), within the stale-while-revalidate window.
			l0.set(recordCacheKey(ds, key), { v: { age: 2 }, t: Date.now() - 6000, i: "seed", r: 1 }, Date.now() - 6000, Date.now() - 6000);
			expect(l0.get(recordCacheKey(ds, key), Number.POSITIVE_INFINITY, Date.now())?.state).toBe("revalidate");
			expect(await fastRecordRead(request(recordPath(ds, key)), services)).toBeUndefined();
		});

		it("HEAD, which the app answers without a body", async () => {
			const key = await hotKey();
			const req = new Request(`${BASE}${recordPath(ds, key)}`, { method: "HEAD", headers: { authorization: `Bearer ${ADMIN_KEY}` } });
			expect(await fastRecordRead(req, services)).toBeUndefined();
			const res = await call("HEAD", recordPath(ds, key));
			expect(res.status).toBe(200);
			expect(await res.text()).toBe("");
		});

		it("a deleted record L0 holds (a tombstone)", async () => {
			const key = uniqueName("tomb");
			await seedD1(ds, key, null, Date.now(), 2);
			services().reader.l0.set(recordCacheKey(ds, key), { v: null, t: Date.now(), i: "seed", r: 2 }, Date.now(), Date.now());
			expect(await fastRecordRead(request(recordPath(ds, key)), services)).toBeUndefined();
			expect((await viaWorker(request(recordPath(ds, key)))).status).toBe(404);
		});

		it("a read during which the lane fails: the app answers it", async () => {
			const key = await hotKey();
			const l0 = services().reader.l0;
			const get = l0.get;
			let thrown = 0;
			l0.get = (...args) => {
				if (!thrown++) throw new Error("L0 broke");
				return get.apply(l0, args);
			};
			try {
				const res = await viaWorker(request(recordPath(ds, key)));
				expect(thrown).toBeGreaterThanOrEqual(1);
				expect(res.status).toBe(200);
				expect(((await res.json()) as { value: unknown }).value).toEqual({ age: 41, name: "Zoë ✓", emb: [0.5, -1, 2e-9] });
			} finally {
				l0.get = get;
			}
		});

		it("a cached miss (a negative L0 entry)", async () => {
			const key = uniqueName("gone");
			expect((await viaApp(request(recordPath(ds, key)))).status).toBe(404);
			expect(services().reader.l0.get(recordCacheKey(ds, key), Number.POSITIVE_INFINITY, Date.now())?.rec.r).toBe(0);
			expect(await fastRecordRead(request(recordPath(ds, key)), services)).toBeUndefined();
		});
	});
});
