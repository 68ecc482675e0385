/** Single-key reads: GET /v1/datasets/:name/records/:key, the tiers behind it, freshness, projection and conditional requests. */
import { beforeAll, describe, expect, it } from "vitest";
import {
	applyDirect,
	call,
	createDataset,
	env,
	eventually,
	expectJson,
	expectProblem,
	getRecord,
	kvRecord,
	postEvents,
	type RecordBody,
	seedD1,
	uniqueName,
	userSpec,
	waitForD1,
	waitForRecord,
} from "./helpers";

const TIERS = ["l0", "redis", "kv", "d1"];

let ds = "";
beforeAll(async () => {
	ds = await createDataset(userSpec(3600));
});

/** Applies one upsert through the real consumer (direct queue-handler call) and returns its key. */
async function put(value: Record<string, unknown>, time = Date.now(), dataset = ds, key = uniqueName("k")): Promise<string> {
	await applyDirect([{ id: uniqueName("e"), dataset, key, op: "upsert", value, time }]);
	return key;
}

describe("GET /v1/datasets/:name/records/:key", () => {
	describe("happy", () => {
		it("reads a record after ingest through POST /v1/events", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 1500;
			await postEvents([{ dataset: ds, key: k, op: "upsert", value: { age: 30, name: "Ann", emb: [1, 2, 3] }, event_time: t }]);
			const body = await waitForRecord(ds, k);
			expect(body).toEqual({
				dataset: ds,
				key: k,
				status: "present",
				value: { age: 30, name: "Ann", emb: [1, 2, 3] },
				event_time: new Date(t).toISOString(),
				age_ms: expect.any(Number),
			});
			expect(body.age_ms).toBeGreaterThanOrEqual(1500);
			expect(body.age_ms).toBeLessThan(60_000);
		});

		it("projects fields=a,b: exactly those fields, null for one the record lacks", async () => {
			const k = await put({ age: 5, name: "Bo", score: 0.5 });
			const body = await expectJson<RecordBody>(await getRecord(ds, k, "fields=age,tags"), 200);
			expect(body.value).toEqual({ age: 5, tags: null });
			const spaced = await expectJson<RecordBody>(await getRecord(ds, k, "fields=%20name%20,score"), 200);
			expect(spaced.value).toEqual({ name: "Bo", score: 0.5 });
		});

		it("round-trips keys with reserved, percent and non-ASCII characters", async () => {
			for (const key of ["a/b", "sp ace", "q?x=1#frag", "100%", "%41", "ключ🔑", "a+b", "dot.", "x%2Fy"]) {
				await put({ name: key }, Date.now(), ds, key);
				const body = await expectJson<RecordBody>(await getRecord(ds, key), 200);
				expect(body.key).toBe(key);
				expect(body.value).toEqual({ name: key });
			}
		});

		it("accepts a key of exactly 400 bytes", async () => {
			const key = `${uniqueName("k")}_`.padEnd(400, "z");
			await put({ age: 1 }, Date.now(), ds, key);
			expect((await expectJson<RecordBody>(await getRecord(ds, key), 200)).key).toBe(key);
		});
	});

	describe("tiers and headers", () => {
		it("names the answering tier in X-Hotpath-Tier and times it in Server-Timing; a second read comes from l0", async () => {
			const k = uniqueName("k");
			await seedD1(ds, k, { age: 77 }, Date.now() - 1000);
			const first = await getRecord(ds, k);
			expect(first.status).toBe(200);
			const tier = first.headers.get("x-hotpath-tier");
			expect(TIERS).toContain(tier);
			expect(tier).toBe("d1"); // only D1 holds a record written straight into it
			const timing = first.headers.get("server-timing") ?? "";
			expect(timing).toMatch(/(^|, )l0;dur=\d+(\.\d+)?/);
			expect(timing).toMatch(/(^|, )d1;dur=\d+(\.\d+)?/);
			expect(((await first.json()) as RecordBody).value).toEqual({ age: 77 });

			const second = await getRecord(ds, k);
			expect(second.headers.get("x-hotpath-tier")).toBe("l0");
			expect(second.headers.get("server-timing")).toMatch(/^l0;dur=/);
			expect(((await second.json()) as RecordBody).value).toEqual({ age: 77 });
		});

		it("D1 alone is enough: a read of a D1-only record fills KV in the background with D1's copy", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 1000;
			await seedD1(ds, k, { age: 12 }, t, 3);
			expect((await getRecord(ds, k)).status).toBe(200);
			const copy = await eventually(() => kvRecord(ds, k).then((c) => c ?? undefined), { what: "the KV fill" });
			expect(copy).toEqual({ v: { age: 12 }, t, i: "seed", r: 3 });
		});

		it("a copy in KV answers a read that tolerates KV's lag", async () => {
			const k = uniqueName("k");
			await env.RECORDS_KV.put(`r:${ds}:${k}`, JSON.stringify({ r: 1, t: Date.now() - 2000, i: "kv", v: { age: 1 } }));
			const res = await getRecord(ds, k);
			expect(res.headers.get("x-hotpath-tier")).toBe("kv");
			expect(((await res.json()) as RecordBody).value).toEqual({ age: 1 });
		});

		it("a read whose max_staleness is below KV's worst-case lag skips KV and answers from D1", async () => {
			const k = uniqueName("k");
			// KV lags: it still holds revision 1 while D1 has revision 2.
			await env.RECORDS_KV.put(`r:${ds}:${k}`, JSON.stringify({ r: 1, t: Date.now() - 5000, i: "old", v: { age: 1 } }));
			await seedD1(ds, k, { age: 2 }, Date.now() - 1000, 2);
			const res = await getRecord(ds, k, "max_staleness=10");
			expect(res.headers.get("x-hotpath-tier")).toBe("d1");
			expect(res.headers.get("server-timing")).not.toMatch(/(^|, )kv;/);
			expect(((await res.json()) as RecordBody).value).toEqual({ age: 2 });
		});

		it("sets a weak ETag and answers If-None-Match with 304 and no body", async () => {
			const k = await put({ age: 3 });
			const res = await getRecord(ds, k);
			const etag = res.headers.get("etag");
			expect(etag).toMatch(/^W\/".+"$/);
			await res.body?.cancel();
			// If-None-Match compares weakly (RFC 9110 13.1.2): the tag without its W/ prefix matches too.
			const strong = (etag as string).slice(2);
			for (const inm of [etag as string, `"other", ${etag}`, "*", strong, `"other",${strong}`]) {
				const cached = await getRecord(ds, k, "", { headers: { "if-none-match": inm } });
				expect(cached.status, inm).toBe(304);
				expect(await cached.text()).toBe("");
				expect(cached.headers.get("etag")).toBe(etag);
			}
			const other = await getRecord(ds, k, "", { headers: { "if-none-match": 'W/"something-else"' } });
			expect(other.status).toBe(200);
			expect(((await other.json()) as RecordBody).value).toEqual({ age: 3 });
		});

		it("changes the ETag when the record changes, so an old ETag gets a 200 with the new value", async () => {
			const k = await put({ age: 3 }, Date.now() - 100);
			const before = await getRecord(ds, k);
			const etag = before.headers.get("etag") as string;
			await before.body?.cancel();
			await applyDirect([{ id: uniqueName("e"), dataset: ds, key: k, op: "patch", value: { age: 4 }, time: Date.now() }]);
			const after = await getRecord(ds, k, "", { headers: { "if-none-match": etag } });
			expect(after.status).toBe(200);
			expect(after.headers.get("etag")).not.toBe(etag);
			expect(((await after.json()) as RecordBody).value).toEqual({ age: 4 });
		});

		it("the ETag differs per projection", async () => {
			const k = await put({ age: 3, name: "x" });
			const all = (await getRecord(ds, k)).headers.get("etag");
			const proj = (await getRecord(ds, k, "fields=age")).headers.get("etag");
			expect(all).not.toBe(proj);
			expect((await getRecord(ds, k, "fields=name", { headers: { "if-none-match": proj as string } })).status).toBe(200);
		});

		// Regression (was a bug): fields=age,age gave the ETag of a different projection than fields=age, for the same body.
		it("a projection naming a field twice is that field once: the same body and ETag", async () => {
			const k = await put({ age: 3, name: "x" });
			const once = await getRecord(ds, k, "fields=age");
			const twice = await getRecord(ds, k, "fields=age,age");
			expect(((await twice.json()) as RecordBody).value).toEqual(((await once.json()) as RecordBody).value);
			expect(twice.headers.get("etag")).toBe(once.headers.get("etag"));
		});

		it("Cache-Control: a fresh value may be cached briefly; a stale one must be revalidated", async () => {
			const fresh = await put({ age: 1 });
			const res = await getRecord(ds, fresh);
			const m = /^private, max-age=(\d+)$/.exec(res.headers.get("cache-control") ?? "");
			expect(m, res.headers.get("cache-control") ?? "no cache-control").not.toBeNull();
			expect(Number(m?.[1])).toBeLessThanOrEqual(5);
			const old = await put({ age: 1 }, Date.now() - 120_000);
			expect((await getRecord(ds, old, "max_staleness=60")).headers.get("cache-control")).toBe("no-cache");
		});

		it("Cache-Control never outlasts the dataset's ttl, even when max_staleness allows more", async () => {
			const short = await createDataset(userSpec(10));
			const k = await put({ age: 1 }, Date.now() - 6000, short);
			// 6 s old with a 10 s ttl: at most 4 s left (less than L0's 5 s), whatever max_staleness says.
			for (const q of ["", "max_staleness=60"]) {
				const res = await getRecord(short, k, q);
				expect(((await res.json()) as RecordBody).status).toBe("present");
				expect(res.headers.get("cache-control")).toMatch(/^private, max-age=[0-4]$/);
			}
		});
	});

	describe("freshness", () => {
		it("an old value read with a smaller max_staleness is reported stale, value included", async () => {
			const t = Date.now() - 600_000;
			const k = await put({ age: 8 }, t);
			const body = await expectJson<RecordBody>(await getRecord(ds, k, "max_staleness=60"), 200);
			expect(body).toMatchObject({ status: "stale", value: { age: 8 }, event_time: new Date(t).toISOString() });
			expect(body.age_ms).toBeGreaterThanOrEqual(600_000);
		});

		it("the same value read with a larger max_staleness is present", async () => {
			const k = await put({ age: 8 }, Date.now() - 600_000);
			expect((await expectJson<RecordBody>(await getRecord(ds, k, "max_staleness=3000"), 200)).status).toBe("present");
		});

		it("if_stale=omit withholds a stale value (value null) but still reports its time", async () => {
			const t = Date.now() - 600_000;
			const k = await put({ age: 8 }, t);
			const body = await expectJson<RecordBody>(await getRecord(ds, k, "max_staleness=60&if_stale=omit"), 200);
			expect(body).toMatchObject({ status: "stale", value: null, event_time: new Date(t).toISOString() });
			const fresh = await expectJson<RecordBody>(await getRecord(ds, k, "max_staleness=3000&if_stale=omit"), 200);
			expect(fresh).toMatchObject({ status: "present", value: { age: 8 } });
		});

		it("a value older than the dataset's ttl_seconds is stale with no max_staleness at all", async () => {
			const short = await createDataset(userSpec(1));
			const k = await put({ age: 1 }, Date.now() - 10_000, short);
			expect(await expectJson<RecordBody>(await getRecord(short, k), 200)).toMatchObject({ status: "stale", value: { age: 1 } });
			// max_staleness can only tighten the ttl, never loosen it.
			expect((await expectJson<RecordBody>(await getRecord(short, k, "max_staleness=3600"), 200)).status).toBe("stale");
		});

		it("a ttl change applies to the very next read", async () => {
			const own = await createDataset(userSpec(3600));
			const k = await put({ age: 1 }, Date.now() - 100_000, own);
			expect((await expectJson<RecordBody>(await getRecord(own, k), 200)).status).toBe("present");
			await expectJson(await call("PUT", `/v1/datasets/${own}`, { json: userSpec(10) }), 200);
			expect((await expectJson<RecordBody>(await getRecord(own, k), 200)).status).toBe("stale");
		});

		it("max_staleness=0 is allowed (demands D1) and serves a value that is stale by definition", async () => {
			const k = uniqueName("k");
			await seedD1(ds, k, { age: 1 }, Date.now() - 1000);
			expect((await getRecord(ds, k)).status).toBe(200); // now cached in l0 (and filled into the other tiers)
			const res = await getRecord(ds, k, "max_staleness=0");
			expect(res.headers.get("x-hotpath-tier")).toBe("d1");
			expect(((await res.json()) as RecordBody).status).toBe("stale");
		});
	});

	describe("error", () => {
		it("a missing key -> 404 problem naming key and dataset", async () => {
			const k = uniqueName("missing");
			const res = await getRecord(ds, k);
			const p = await expectProblem(res, 404);
			expect(p.detail).toContain(k);
			expect(p.detail).toContain(ds);
			expect(TIERS).toContain(res.headers.get("x-hotpath-tier"));
		});

		it("a deleted key (tombstone) -> 404 problem, while D1 keeps the tombstone", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 5000;
			await postEvents([{ dataset: ds, key: k, op: "upsert", value: { age: 1 }, event_time: t }]);
			await waitForRecord(ds, k);
			await postEvents([{ dataset: ds, key: k, op: "delete", event_time: t + 1000 }]);
			const p = await eventually(
				async () => {
					const res = await getRecord(ds, k);
					if (res.status !== 404) {
						await res.body?.cancel();
						return undefined;
					}
					return expectProblem(res, 404);
				},
				{ timeoutMs: 20_000, what: "the delete to be served" },
			);
			expect(p.detail).toContain(k);
			const row = await waitForD1(ds, k);
			expect(row).toMatchObject({ value: null, base_deleted: 1, event_time: t + 1000 });
			// A late, older upsert does not bring the record back.
			await applyDirect([{ id: uniqueName("e"), dataset: ds, key: k, op: "upsert", value: { age: 2 }, time: t + 500 }]);
			await expectProblem(await getRecord(ds, k), 404);
		});

		it("an unknown dataset -> 404 problem naming it", async () => {
			const name = uniqueName("missing");
			const p = await expectProblem(await getRecord(name, "k"), 404);
			expect(p.detail).toContain(name);
		});

		// Regression (was a bug): the 404 for a dataset that does not exist had no Cache-Control, and a 404 is
		// cacheable by default (RFC 9111 4.2.2): a browser or CDN could keep answering it after the dataset
		// was created, where the registry change is to be visible on the next request.
		it("the 404 for a dataset not created yet is not to be stored; once created, the next read sees it", async () => {
			const name = uniqueName("later");
			for (const path of [`/v1/datasets/${name}/records/k`, `/v1/datasets/${name}/records/k/history`, `/v1/datasets/${name}`]) {
				const res = await call("GET", path);
				await expectProblem(res.clone(), 404);
				expect(res.headers.get("cache-control"), path).toBe("no-store");
			}
			await createDataset(userSpec(3600), name);
			const p = await expectProblem(await getRecord(name, "k"), 404);
			expect(p.type).toMatch(/record-not-found$/);
			// The record route's own policy for a key the dataset does not have is kept.
			expect((await getRecord(name, "k")).headers.get("cache-control")).toBe("no-cache");
		});

		it("a key longer than 400 bytes -> 400 problem pointing at the key", async () => {
			const p = await expectProblem(await getRecord(ds, "k".repeat(401)), 400);
			expect(p.detail).toMatch(/400 bytes/);
			expect(p.errors).toEqual([{ pointer: "key", detail: p.detail }]);
			expect((await expectProblem(await getRecord(ds, "é".repeat(201)), 400)).errors?.[0]?.pointer).toBe("key");
		});

		it("an unknown field in fields= -> 400 problem naming it", async () => {
			const k = await put({ age: 1 });
			const p = await expectProblem(await getRecord(ds, k, "fields=age,colour"), 400);
			expect(p.detail).toContain("colour");
			expect(p.errors).toEqual([{ pointer: "fields", detail: expect.stringContaining("colour") }]);
		});

		// Regression (was a bug): checkFields tests `f in known`, which sees Object.prototype, so fields=toString (or
		// constructor, hasOwnProperty, __proto__) passes as a known field and the read answers 200 with
		// a made-up projection (src/routes/validation.ts, checkFields; fix: Object.hasOwn(known, f)).
		it.each(["toString", "constructor", "__proto__"])("fields=%s (not a declared field) -> 400 problem", async (field) => {
			const k = await put({ age: 1 });
			await expectProblem(await getRecord(ds, k, `fields=${field}`), 400);
		});

		it.each(["-1", "abc", "Infinity", "1e400"])("max_staleness=%s -> 400 problem", async (v) => {
			const k = await put({ age: 1 });
			const p = await expectProblem(await getRecord(ds, k, `max_staleness=${v}`), 400);
			expect(p.detail).toMatch(/max_staleness/);
		});

		it("if_stale other than serve/omit -> 400 problem", async () => {
			const k = await put({ age: 1 });
			const p = await expectProblem(await getRecord(ds, k, "if_stale=drop"), 400);
			expect(p.detail).toMatch(/if_stale/);
			// Regression (was a bug): the only bad query option without errors[] naming where it was.
			expect(p.errors).toEqual([{ pointer: "if_stale", detail: expect.stringContaining("drop") }]);
		});
	});
});
