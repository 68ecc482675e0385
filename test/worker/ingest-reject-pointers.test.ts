/**
 * POST /v1/datasets/:name/ingest: a log record whose mapped field or time is of the wrong kind is
 * rejected naming where in the record it was (the pointer, and the mapping entry that points
 * there), as the key and op already are: "value.status" names a member of an event the shipper
 * never sent.
 */
import { describe, expect, it, vi } from "vitest";
import { call, createDataset, expectJson, expectProblem, type IngestResult, uniqueName } from "./helpers";

const ingest = (ds: string, body: string) => call("POST", `/v1/datasets/${ds}/ingest`, { body, headers: { "content-type": "application/x-ndjson" } });

describe("ingest rejects name the record's pointers", () => {
	it("a mapped field or event_time of the wrong kind is rejected at its pointer; the other records go through", async () => {
		const ds = await createDataset({
			key: "user_id",
			fields: { status: "int", path: "string" },
			ingest: { key: "/user/id", event_time: "/ts", fields: { status: "/http/status", path: "/http/path" } },
		} as never);
		const u = uniqueName("u");
		const now = Date.now();
		const lines = [
			{ user: { id: u }, ts: now, http: { status: "teapot", path: 7 } },
			{ user: { id: u }, ts: "yesterday", http: { status: 200 } },
			{ user: { id: u }, ts: now, http: { status: 200, path: "/ok" } },
		].map((r) => JSON.stringify(r));
		const res = await expectJson<IngestResult>(await ingest(ds, lines.join("\n")), 202);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toEqual([
			{
				index: 0,
				error: "status at /http/status (ingest.fields.status): expected an integer; path at /http/path (ingest.fields.path): expected a string",
			},
			{ index: 1, error: expect.stringMatching(/^event_time "yesterday" is not a valid RFC 3339 time .* \(at \/ts, ingest\.event_time\)$/) },
		]);
	});

	it("without a fields mapping, a field is named at the record's own property; a body of only such records is a 400 saying so", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid" } } as never);
		const p = await expectProblem(await ingest(ds, JSON.stringify({ uid: "a", status: "x" })), 400);
		expect(p.errors).toEqual([{ pointer: "/0/status", detail: "status at /status: expected an integer" }]);
	});
});

describe("ingest rejects are logged", () => {
	it("a 202 with rejected records, which log shippers do not read, logs a warning with the dataset, the counts and the first reasons", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid" } } as never);
		const warn = vi.spyOn(console, "warn");
		try {
			const lines = [{ uid: "a", status: 1 }, { uid: "b", status: "x" }, { nouid: 1 }].map((r) => JSON.stringify(r));
			expect(await expectJson<IngestResult>(await ingest(ds, lines.join("\n")), 202)).toMatchObject({ accepted: 1 });
			const logged = warn.mock.calls.map((c) => JSON.parse(String(c[0])) as Record<string, unknown>).filter((l) => l.dataset === ds);
			expect(logged).toEqual([
				{
					level: "warn",
					msg: "ingest rejected records; the shipper was answered 202",
					dataset: ds,
					accepted: 1,
					rejected: 2,
					first: "[1] status at /status: expected an integer; [2] no key at /uid (ingest.key)",
				},
			]);
		} finally {
			warn.mockRestore();
		}
	});
});

describe("a time in fractional epoch seconds", () => {
	it("is rejected saying it looks like epoch seconds and what to send instead (Fluent Bit's default date is such a number; json_date_format iso8601 sends RFC 3339)", async () => {
		const ds = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid", event_time: "/date" } } as never);
		const seconds = Date.now() / 1000;
		const p = await expectProblem(await ingest(ds, JSON.stringify({ uid: "a", date: seconds, status: 1 })), 400);
		expect(p.errors).toEqual([
			{
				pointer: "/0/date",
				detail: `event_time ${seconds} is not whole milliseconds: it looks like epoch seconds; send epoch milliseconds or RFC 3339 (at /date, ingest.event_time)`,
			},
		]);
		// A fraction that is no plausible time in seconds keeps the general reason.
		const events = await expectProblem(await call("POST", "/v1/events", { json: [{ dataset: ds, key: "a", op: "upsert", value: {}, event_time: 1.5 }] }), 400);
		expect(events.errors?.[0]?.detail).toBe("event_time as a number must be whole epoch milliseconds");
	});
});
