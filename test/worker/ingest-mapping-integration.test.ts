/**
 * Log shippers: a dataset's `ingest` mapping of JSON Pointers, and POST /v1/datasets/:name/ingest
 * taking arbitrary records (as Fluent Bit's http output with json_lines, and Vector's http sink,
 * send them), rejecting what cannot be mapped by index, through the same queue path as events.
 */
import { describe, expect, it } from "vitest";
import { resolvePointer } from "../../src/ingest/mapping";
import { call, createDataset, createKey, d1Record, expectJson, expectProblem, type IngestResult, sleep, uniqueName, waitForD1 } from "./helpers";

const spec = {
	key: "user_id",
	fields: { status: "int", path: "string", bytes: "int" },
	ttl_seconds: 3600,
	ingest: { key: "/user/id", event_time: "/ts", op: "/action", fields: { status: "/http/status", path: "/http/path", bytes: "/http/bytes" } },
};

const ingest = (ds: string, body: string, type = "application/x-ndjson") =>
	call("POST", `/v1/datasets/${ds}/ingest`, { body, headers: { "content-type": type } });

describe("resolvePointer (RFC 6901)", () => {
	it("follows objects and arrays, unescapes ~1 and ~0, and misses what is not there", () => {
		const doc = { a: { "b/c": [10, { "d~e": 5 }] }, "": 1 };
		expect(resolvePointer(doc, "")).toBe(doc);
		expect(resolvePointer(doc, "/a/b~1c/0")).toBe(10);
		expect(resolvePointer(doc, "/a/b~1c/1/d~0e")).toBe(5);
		expect(resolvePointer(doc, "/")).toBe(1);
		for (const missing of ["/x", "/a/b~1c/2", "/a/b~1c/01", "/a/b~1c/-", "/a/toString"]) expect(typeof resolvePointer(doc, missing)).toBe("symbol");
	});
});

describe("POST /v1/datasets/:name/ingest", () => {
	it("maps NDJSON records (Fluent Bit json_lines) through the pointers into events, and rejects unmappable ones by line", async () => {
		const ds = await createDataset(spec as never);
		const u = uniqueName("u");
		const now = Date.now();
		const lines = [
			JSON.stringify({ user: { id: u }, ts: new Date(now - 2000).toISOString(), http: { status: 200, path: "/a", bytes: 10 }, host: "web-1" }),
			JSON.stringify({ user: {}, ts: now, http: { status: 500 } }),
			"not json",
			JSON.stringify({ user: { id: `${u}_2` }, ts: now - 1000, http: { status: "teapot" } }),
			JSON.stringify({ user: { id: u }, ts: now - 1000, action: "patch", http: { status: 404 } }),
		];
		const res = await expectJson<IngestResult>(await ingest(ds, lines.join("\n")), 202);
		expect(res.accepted).toBe(2);
		expect(res.rejected.map((r) => [r.index, r.error])).toEqual([
			[1, expect.stringMatching(/no key at \/user\/id/)],
			[2, expect.stringMatching(/line 3 is not valid JSON/)],
			[3, "status at /http/status (ingest.fields.status): expected an integer"],
		]);
		const row = await waitForD1(ds, u, (r) => r.value?.includes("404") ?? false);
		expect(JSON.parse(row.value ?? "null")).toEqual({ status: 404, path: "/a", bytes: 10 });
		expect(row.event_time).toBe(now - 1000);
	});

	it("reads lines of JSON sent as application/json as NDJSON (Fluent Bit before 3.0 labelled json_lines so)", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid" } } as never);
		const u = uniqueName("u");
		const body = [JSON.stringify({ uid: u, status: 1 }), JSON.stringify({ uid: `${u}_b`, status: 2 })].join("\n");
		expect(await expectJson<IngestResult>(await ingest(ds, body, "application/json"), 202)).toEqual({ accepted: 2, rejected: [] });
		expect(JSON.parse((await waitForD1(ds, `${u}_b`)).value ?? "null")).toEqual({ status: 2 });
	});

	it("refuses a broken JSON array sent as application/json (400), rather than reading its lines as NDJSON and applying some", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid" } } as never);
		const u = uniqueName("u");
		// Commas missing between the elements: each inner line is a record on its own, the body is no JSON.
		const body = `[\n${JSON.stringify({ uid: u, status: 1 })}\n${JSON.stringify({ uid: `${u}_b`, status: 2 })}\n]`;
		const p = await expectProblem(await ingest(ds, body, "application/json"), 400);
		expect(p.detail).toMatch(/not valid JSON/);
		// A BOM or blank lines before the bracket change nothing, nor does the NDJSON type.
		await expectProblem(await ingest(ds, `\uFEFF\n  ${body}`, "application/json"), 400);
		const pretty = `[\n${JSON.stringify({ uid: u, status: 1 })},\n${JSON.stringify({ uid: `${u}_b`, status: 2 })}\n]`;
		const asNdjson = await expectProblem(await ingest(ds, pretty, "application/x-ndjson"), 400);
		expect(asNdjson.errors).toEqual([{ pointer: "/0", detail: expect.stringMatching(/^line 1 is a JSON array: NDJSON holds one record per line/) }]);
		await sleep(1500);
		expect(await d1Record(ds, u)).toBeNull();
		expect(await d1Record(ds, `${u}_b`)).toBeNull();
	});

	it("takes a JSON array (Vector's http sink), and without fields maps the record's own properties named like fields", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int", path: "string" }, ingest: { key: "/uid" } } as never);
		const u = uniqueName("u");
		const res = await expectJson<IngestResult>(
			await ingest(ds, JSON.stringify([{ uid: u, status: 201, path: "/x", extra: "ignored" }]), "application/json"),
			202,
		);
		expect(res).toEqual({ accepted: 1, rejected: [] });
		expect(JSON.parse((await waitForD1(ds, u)).value ?? "null")).toEqual({ status: 201, path: "/x" });
	});

	it("a record holding none of the mapped fields (a log line of another shape) is rejected rather than emptying the record", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int", path: "string" }, ingest: { key: "/uid" } } as never);
		const u = uniqueName("u");
		await expectJson(await ingest(ds, JSON.stringify({ uid: u, status: 201, path: "/x" })), 202);
		await waitForD1(ds, u);
		// A line with the key and nothing the dataset maps, beside one that maps.
		const body = [JSON.stringify({ uid: u, msg: "heartbeat" }), JSON.stringify({ uid: u, path: "/y" })].join("\n");
		const res = await expectJson<IngestResult>(await ingest(ds, body), 202);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toEqual([
			{ index: 0, error: expect.stringMatching(/holds none of the mapped fields \(status, path\): as an upsert it would empty the record/) },
		]);
		expect(JSON.parse((await waitForD1(ds, u, (r) => (r.value ?? "").includes("/y"))).value ?? "null")).toEqual({ path: "/y" });
		// An op of its own is what it says: an upsert of nothing empties the record, when asked.
		const withOp = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid", op: "/op" } } as never);
		const asked = await expectJson<IngestResult>(await ingest(withOp, JSON.stringify({ uid: u, op: "upsert" })), 202);
		expect(asked).toEqual({ accepted: 1, rejected: [] });
	});

	it("a dataset without a mapping, a bad mapping, a limited key and an empty body are refused with problems", async () => {
		const plain = await createDataset({ key: "id", fields: { a: "int" } });
		const p = await expectProblem(await ingest(plain, JSON.stringify({ id: "a" })), 400);
		expect(p.detail).toMatch(/no ingest mapping/);
		const bad = await expectProblem(
			await call("PUT", `/v1/datasets/${uniqueName()}`, { json: { key: "id", fields: { a: "int" }, ingest: { key: "id", fields: { nope: "/x" } } } }),
			400,
		);
		expect(bad.errors?.map((e) => e.pointer).sort()).toEqual(["/ingest/fields/nope", "/ingest/key"]);
		const ds = await createDataset(spec as never);
		const other = await createKey(["write"], [plain]);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/ingest`, { key: other.key, json: [{}] }), 403);
		await expectProblem(await ingest(ds, ""), 400);
		await expectProblem(await ingest(ds, JSON.stringify([{ user: {} }]), "application/json"), 400);
	});

	it("a key that is no string or integer is rejected naming its pointer (not 'user_id in value', which ingest never reads); a null op is an upsert, as a missing one", async () => {
		const ds = await createDataset(spec as never);
		const u = uniqueName("u");
		const now = Date.now();
		const lines = [
			{ user: { id: 1.5 }, ts: now },
			{ user: { id: true }, ts: now },
			{ user: { id: "" }, ts: now },
			{ user: { id: null }, ts: now },
			{ user: { id: { a: 1 } }, ts: now },
			{ user: { id: u }, ts: now, action: null, http: { status: 201 } },
			{ user: { id: `${u}_n` }, ts: now, action: 7 },
		].map((r) => JSON.stringify(r));
		const res = await expectJson<IngestResult>(await ingest(ds, lines.join("\n")), 202);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toEqual([
			{ index: 0, error: "the key at /user/id (ingest.key) must be a non-empty string or an integer, not 1.5" },
			{ index: 1, error: "the key at /user/id (ingest.key) must be a non-empty string or an integer, not true" },
			{ index: 2, error: 'the key at /user/id (ingest.key) must be a non-empty string or an integer, not ""' },
			{ index: 3, error: "the key at /user/id (ingest.key) must be a non-empty string or an integer, not null" },
			{ index: 4, error: "the key at /user/id (ingest.key) must be a non-empty string or an integer, not an object" },
			{ index: 6, error: "the op at /action (ingest.op) must be upsert, patch or delete, not 7" },
		]);
		expect(JSON.parse((await waitForD1(ds, u)).value ?? "null")).toEqual({ status: 201 });
	});
});
