/**
 * Derived fields end to end: declared in a spec, refused there when they cannot work, computed by
 * the consumer on write from the merged record, and served, searched, exported and read back in
 * history like any field. Events cannot set them.
 */
import { describe, expect, it } from "vitest";
import {
	call,
	createDataset,
	env,
	eventually,
	expectJson,
	expectProblem,
	getRecord,
	postEvents,
	type RecordBody,
	type SpecInput,
	uniqueName,
	waitForD1,
	waitForRecord,
} from "./helpers";
import { datasetWithKeys, REBUILD_KEYS, rebuildKeyOf, waitRebuildDone } from "./rebuilds";

const spec = (): SpecInput => ({
	key: "item_id",
	fields: {
		clicks: "int",
		impressions: "int",
		country: "string",
		ctr: { type: "float", derive: "clicks / max(impressions, 1)" },
		region: { type: "string", derive: "country == 'DE' || country == 'FR' ? 'eu' : 'other'" },
	},
});

const put = (name: string, body: unknown) => call("PUT", `/v1/datasets/${name}`, { json: body });
const storedValue = async (ds: string, key: string) => (await expectJson<RecordBody>(await getRecord(ds, key), 200)).value;

describe("derived fields: the spec", () => {
	it("keeps each field's expression, and the value's JSON Schema marks the field read-only", async () => {
		const ds = uniqueName();
		const created = await expectJson<{ fields: Record<string, unknown> }>(await put(ds, spec()), 201);
		expect(created.fields.ctr).toEqual({ type: "float", derive: "clicks / max(impressions, 1)" });
		expect(created.fields.clicks).toEqual({ type: "int" });
		const schema = await expectJson<{ properties: Record<string, { readOnly?: boolean; description?: string }> }>(
			await call("GET", `/v1/datasets/${ds}/schema`),
			200,
		);
		expect(schema.properties.ctr).toMatchObject({ readOnly: true, description: "derived on write: clicks / max(impressions, 1)" });
		expect(schema.properties.clicks?.readOnly).toBeUndefined();
	});

	it("refuses an expression that cannot work with a 400 at its pointer, and creates nothing", async () => {
		const cases: [Record<string, unknown>, string, RegExp][] = [
			[{ type: "float", derive: "clicks +" }, "/fields/bad/derive", /cannot parse/],
			[{ type: "float", derive: "click * 2" }, "/fields/bad/derive", /unknown field "click"; the fields events set are clicks, impressions, country/],
			[{ type: "int", derive: "clicks / 2" }, "/fields/bad/derive", /the expression is float, the field int/],
			[{ type: "float", derive: "ctr * 2" }, "/fields/bad/derive", /"ctr" is a derived field/],
			[{ type: "float", derive: "" }, "/fields/bad/derive", /^the expression is empty$/],
			[{ type: "string[]", derive: "country" }, "/fields/bad/type", /a derived field is string, int, float, bool; "bad" is string\[\]/],
			[{ type: "vector", dim: 2, derive: "clicks" }, "/fields/bad/type", /a derived field is string, int, float, bool/],
		];
		for (const [field, pointer, detail] of cases) {
			const ds = uniqueName();
			const body = { ...spec(), fields: { ...spec().fields, bad: field } };
			const p = await expectProblem(await put(ds, body), 400);
			const errors = (p as unknown as { errors: { pointer: string; detail: string }[] }).errors;
			// One item, at the pointer: nothing said twice.
			expect(errors, JSON.stringify(field)).toEqual([{ pointer, detail: expect.stringMatching(detail) }]);
			expect((await call("GET", `/v1/datasets/${ds}`)).status).toBe(404);
		}
	});

	it("refuses an ingest mapping or an aggregate over a derived field", async () => {
		const mapped = await expectProblem(await put(uniqueName(), { ...spec(), ingest: { key: "/id", fields: { ctr: "/ctr" } } }), 400);
		expect(JSON.stringify(mapped)).toContain('"pointer":"/ingest/fields/ctr"');
		const aggregated = await expectProblem(await put(uniqueName(), { ...spec(), aggregates: { ctr_sum: { fn: "sum", of: "ctr", window: "1h" } } }), 400);
		expect(JSON.stringify(aggregated)).toContain('"pointer":"/aggregates/ctr_sum/of"');
	});

	it("refuses to change, add or remove a field's expression (409), and takes a new derived field (200)", async () => {
		const ds = await createDataset(spec());
		const withExpr = (ctr: Record<string, unknown>) => ({ ...spec(), fields: { ...spec().fields, ctr } });
		for (const ctr of [{ type: "float", derive: "clicks / impressions" }, { type: "float" }]) {
			const p = await expectProblem(await put(ds, withExpr(ctr)), 409);
			expect(JSON.stringify(p)).toContain("/fields/ctr/derive");
		}
		// The same expression reformatted is no change.
		expect((await put(ds, withExpr({ type: "float", derive: " clicks/max( impressions ,1 ) " }))).status).toBe(200);
		const plain = await createDataset({ key: "id", fields: { a: "int", b: "int" } });
		expect((await put(plain, { key: "id", fields: { a: "int", b: { type: "int", derive: "a * 2" } } })).status).toBe(409);
		expect((await put(plain, { key: "id", fields: { a: "int", b: "int", twice: { type: "int", derive: "a * 2" } } })).status).toBe(200);
	});
});

describe("derived fields: computed on write", () => {
	it("computes them from an upsert, and again from the merged record when a patch changes an input", async () => {
		const ds = await createDataset(spec());
		const t = Date.now() - 60_000;
		await postEvents([{ dataset: ds, key: "i1", op: "upsert", value: { clicks: 3, impressions: 4, country: "DE" }, event_time: t }]);
		await waitForRecord(ds, "i1");
		expect(await storedValue(ds, "i1")).toEqual({ clicks: 3, impressions: 4, country: "DE", ctr: 0.75, region: "eu" });

		await postEvents([{ dataset: ds, key: "i1", op: "patch", value: { impressions: 6, country: "US" }, event_time: t + 1000 }]);
		const after = await waitForRecord(ds, "i1", (b) => b.value?.impressions === 6);
		expect(after.value).toEqual({ clicks: 3, impressions: 6, country: "US", ctr: 0.5, region: "other" });
		// D1, the truth, holds them too: every tier and export serve what it holds.
		const row = await waitForD1(ds, "i1", (r) => r.value?.includes('"impressions":6') ?? false);
		expect(JSON.parse(row.value as string)).toMatchObject({ ctr: 0.5, region: "other" });
	});

	it("gives null when an input is missing or the arithmetic has no answer", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int", b: "int", ratio: { type: "float", derive: "a / b" } } });
		await postEvents([
			{ dataset: ds, key: "half", op: "upsert", value: { a: 1 } },
			{ dataset: ds, key: "zero", op: "upsert", value: { a: 1, b: 0 } },
		]);
		await waitForRecord(ds, "half");
		await waitForRecord(ds, "zero");
		expect(await storedValue(ds, "half")).toEqual({ a: 1, ratio: null });
		expect(await storedValue(ds, "zero")).toEqual({ a: 1, b: 0, ratio: null });
	});

	it("converges: patches in any order give the derived value of the final record", async () => {
		const ds = await createDataset(spec());
		const t = Date.now() - 60_000;
		const events = [
			{ dataset: ds, key: "k", op: "upsert", value: { clicks: 1, impressions: 10, country: "FR" }, event_time: t },
			{ dataset: ds, key: "k", op: "patch", value: { clicks: 5 }, event_time: t + 2 },
			{ dataset: ds, key: "k", op: "patch", value: { impressions: 20 }, event_time: t + 1 },
		];
		// Newest first, each applied (in the log) before the next is sent: three batches, in reverse order.
		const logged = () => env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1 AND key = 'k'").bind(ds).first<{ n: number }>();
		for (const [i, e] of [...events].reverse().entries()) {
			await postEvents([e]);
			await eventually(async () => ((await logged())?.n === i + 1 ? true : undefined), { what: `event ${i + 1} applied` });
		}
		const final = await waitForRecord(ds, "k", (b) => b.value?.clicks === 5 && b.value?.impressions === 20 && b.value?.country === "FR");
		expect(final.value).toEqual({ clicks: 5, impressions: 20, country: "FR", ctr: 0.25, region: "eu" });
	});

	it("refuses an event that sets a derived field, naming it, and applies the rest of the body", async () => {
		const ds = await createDataset(spec());
		const res = await postEvents([
			{ dataset: ds, key: "ok", op: "upsert", value: { clicks: 1, impressions: 2 } },
			{ dataset: ds, key: "bad", op: "upsert", value: { clicks: 1, ctr: 0.9 } },
		]);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toEqual([
			{ index: 1, error: "value.ctr: a derived field (clicks / max(impressions, 1)): it is computed on write, and events cannot set it" },
		]);
		expect((await waitForRecord(ds, "ok")).value?.ctr).toBe(0.5);
		expect((await getRecord(ds, "bad")).status).toBe(404);
	});

	it("serves them in lookups, field projections and GraphQL", async () => {
		const ds = await createDataset(spec());
		await postEvents([{ dataset: ds, key: "g", op: "upsert", value: { clicks: 2, impressions: 8, country: "FR" } }]);
		await waitForRecord(ds, "g");
		const projected = await expectJson<RecordBody>(await getRecord(ds, "g", "fields=ctr,region"), 200);
		expect(projected.value).toEqual({ ctr: 0.25, region: "eu" });
		const lookup = await expectJson<{ results: { records: { value: unknown }[] }[] }>(
			await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["g"], fields: ["ctr"] }] } }),
			200,
		);
		expect(lookup.results[0]?.records[0]?.value).toEqual({ ctr: 0.25 });
		const gql = await expectJson<{ data: Record<string, { value: unknown }[]> }>(
			await call("POST", "/graphql", { json: { query: `{ ${ds}(keys: ["g"]) { value { ctr region } } }` } }),
			200,
		);
		expect(gql.data[ds]?.[0]?.value).toEqual({ ctr: 0.25, region: "eu" });
	});

	it("shows them in every version of the history and in as_of reads, as of each state", async () => {
		const ds = await createDataset(spec());
		const t = Date.now() - 60_000;
		await postEvents([{ dataset: ds, key: "h", op: "upsert", value: { clicks: 1, impressions: 2, country: "DE" }, event_time: t }]);
		await postEvents([{ dataset: ds, key: "h", op: "patch", value: { clicks: 2 }, event_time: t + 1000 }]);
		await waitForRecord(ds, "h", (b) => b.value?.clicks === 2);
		const history = await expectJson<{ versions: { value: Record<string, unknown> }[] }>(await call("GET", `/v1/datasets/${ds}/records/h/history`), 200);
		expect(history.versions.map((v) => v.value.ctr)).toEqual([0.5, 1]);
		const past = await expectJson<RecordBody>(await getRecord(ds, "h", `as_of=${t + 500}`), 200);
		expect(past.value).toMatchObject({ clicks: 1, ctr: 0.5, region: "eu" });
	});

	it("recomputes them on import, so an exported row (which holds them) loads back", async () => {
		const ds = await createDataset(spec());
		const imported = await expectJson<{ imported: number; rejected: unknown[] }>(
			await call("POST", `/v1/datasets/${ds}/import`, { json: [{ item_id: "r1", clicks: 1, impressions: 4, country: "FR", ctr: 99, region: "mars" }] }),
			200,
		);
		expect(imported).toMatchObject({ imported: 1, rejected: [] });
		expect(await storedValue(ds, "r1")).toEqual({ clicks: 1, impressions: 4, country: "FR", ctr: 0.25, region: "eu" });
		// A patch row of derived fields only changes nothing, and says why.
		const onlyDerived = await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { json: [{ item_id: "r1", _op: "patch", ctr: 1 }] }), 400);
		expect(onlyDerived.errors?.[0]?.detail).toMatch(/a patch needs at least one field that is not derived/);

		// Export (the records route) and load into an empty dataset: equal records.
		const page = await expectJson<{ records: { key: string; value: Record<string, unknown> }[] }>(await call("GET", `/v1/datasets/${ds}/records`), 200);
		const copy = await createDataset(spec());
		const rows = page.records.map((r) => ({ item_id: r.key, ...r.value }));
		await expectJson(await call("POST", `/v1/datasets/${copy}/import`, { json: rows }), 200);
		expect(await storedValue(copy, "r1")).toEqual(await storedValue(ds, "r1"));
	});

	it("leaves them out of a log shipper's default mapping: a record's property of that name is not sent", async () => {
		const ds = await createDataset({ ...spec(), ingest: { key: "/item_id" } });
		const res = await call("POST", `/v1/datasets/${ds}/ingest`, { json: [{ item_id: "l1", clicks: 4, impressions: 8, ctr: 7 }] });
		expect(await expectJson<{ accepted: number }>(res, 202)).toMatchObject({ accepted: 1 });
		expect((await waitForRecord(ds, "l1")).value).toMatchObject({ clicks: 4, ctr: 0.5 });
	});

	it("can be searched: a filter on a derived field", async () => {
		const ds = await createDataset({ ...spec(), search: { filters: ["ctr", "region"] } });
		await postEvents([
			{ dataset: ds, key: "a", op: "upsert", value: { clicks: 1, impressions: 10, country: "DE" } },
			{ dataset: ds, key: "b", op: "upsert", value: { clicks: 9, impressions: 10, country: "US" } },
		]);
		const hits = await eventually(
			async () => {
				const res = await call("POST", `/v1/datasets/${ds}/search`, { json: { filter: { ctr: { gt: 0.5 } } } });
				const body = await expectJson<{ hits: { key: string }[] }>(res, 200);
				return body.hits.length ? body.hits : undefined;
			},
			{ what: "search hits" },
		);
		expect(hits.map((h) => h.key)).toEqual(["b"]);
	});
});

describe("derived fields added to a dataset that has records", () => {
	it("are written into every stored record by a refill the PUT starts, served from every tier, and searchable", async () => {
		// Two pages of records (450), each with a value of `a` and no derived field yet.
		const ds = await datasetWithKeys();
		const k7 = rebuildKeyOf(7);
		// A copy of k7 in every tier before the change.
		await waitForRecord(ds, k7);
		const before = await env.DB.prepare("SELECT rev FROM records WHERE dataset = ?1 AND key = ?2").bind(ds, k7).first<{ rev: number }>();

		const res = await put(ds, { key: "id", fields: { a: "int", twice: { type: "int", derive: "a * 2" } }, ttl_seconds: 3600, search: { filters: ["twice"] } });
		expect(res.status).toBe(200);
		const done = await waitRebuildDone(ds);
		expect(done.keys_done).toBe(REBUILD_KEYS);

		// D1 holds it, at a new revision, for every record.
		const rows = await env.DB.prepare("SELECT key, value, rev FROM records WHERE dataset = ?1").bind(ds).all<{ key: string; value: string; rev: number }>();
		expect(rows.results).toHaveLength(REBUILD_KEYS);
		for (const r of rows.results) expect(JSON.parse(r.value).twice, r.key).toBe(JSON.parse(r.value).a * 2);
		expect(rows.results.find((r) => r.key === k7)?.rev).toBe((before?.rev ?? 0) + 1);
		// Reads (whatever tier answers) and the search index have it.
		expect((await waitForRecord(ds, k7, (b) => b.value?.twice === 14)).value).toEqual({ a: 7, twice: 14 });
		const hits = await eventually(
			async () => {
				const body = await expectJson<{ hits: { key: string }[] }>(await call("POST", `/v1/datasets/${ds}/search`, { json: { filter: { twice: 14 } } }), 200);
				return body.hits.length ? body.hits : undefined;
			},
			{ what: "search by the derived field" },
		);
		expect(hits.map((h) => h.key)).toEqual([k7]);
	});

	it("leaves a record the new field would take past the size limit as it is, and derives the others", async () => {
		const ds = await createDataset({ key: "id", fields: { s: "string" } });
		const big = "x".repeat(100_000);
		await expectJson(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ id: "big", s: big },
					{ id: "small", s: "ab" },
				],
			}),
			200,
		);
		const before = await env.DB.prepare("SELECT value, rev FROM records WHERE dataset = ?1 AND key = 'big'").bind(ds).first<{ value: string; rev: number }>();
		// Twelve copies: 1.2 MB, past the 1,000,000 bytes a record may hold.
		const twelve = `concat(${Array(12).fill("s").join(", ")})`;
		expect((await put(ds, { key: "id", fields: { s: "string", s12: { type: "string", derive: twelve } } })).status).toBe(200);
		await waitRebuildDone(ds);
		expect((await waitForRecord(ds, "small", (b) => b.value?.s12 !== undefined)).value?.s12).toBe("ab".repeat(12));
		const after = await env.DB.prepare("SELECT value, rev FROM records WHERE dataset = ?1 AND key = 'big'").bind(ds).first<{ value: string; rev: number }>();
		expect(after).toEqual(before);
	});

	it("starts no rebuild for a dataset without records, nor for a change that adds no derived field", async () => {
		const empty = await createDataset({ key: "id", fields: { a: "int" } });
		expect((await put(empty, { key: "id", fields: { a: "int", twice: { type: "int", derive: "a * 2" } } })).status).toBe(200);
		const plain = await datasetWithKeys();
		expect((await put(plain, { key: "id", fields: { a: "int", b: "string" }, ttl_seconds: 3600 })).status).toBe(200);
		for (const ds of [empty, plain]) expect((await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/rebuild`), 200)).status).toBe("idle");
	});
});
