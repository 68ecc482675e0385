/**
 * What a new user is told when a time parameter is wrong: each 4xx says what was wrong and where,
 * in words that match what was sent (not a generic "Invalid input" or a wrong reason).
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem } from "./helpers";

const DAY = 86_400_000;

describe("time parameters a new user gets wrong", () => {
	it("an RFC 3339 offset with an unencoded '+' in a query string is named as such, with the fix", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		// `?as_of=2026-11-25T10:00:00+01:00` pasted as is: the query string decodes "+" to a space.
		const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?as_of=2026-11-25T10:00:00+01:00`), 400);
		expect(p.errors?.[0]?.pointer).toBe("as_of");
		expect(p.detail).toMatch(/%2B/);
		const h = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k/history?since=2026-11-25T10:00:00.5+01:00`), 400);
		expect(h.errors?.[0]?.pointer).toBe("since");
		expect(h.detail).toMatch(/2026-11-25T10:00:00\.5%2B01:00/);
		// Encoded, the same time is read.
		const ok = await call(
			"GET",
			`/v1/datasets/${ds}/records/k/history?since=${encodeURIComponent(new Date(Date.now() - DAY).toISOString().replace("Z", "+00:00"))}`,
		);
		await expectJson(ok, 200);
	});

	it("a whole number past what a Date holds is 'past the latest time', not 'not whole epoch milliseconds'", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		const h = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k/history?until=9999999999999999`), 400);
		expect(h.errors?.[0]?.pointer).toBe("until");
		expect(h.detail).toMatch(/past the latest time/);
		const l = await expectProblem(await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"], as_of: 1e300 }] } }), 400);
		expect(l.errors?.[0]?.pointer).toBe("/requests/0/as_of");
		expect(l.errors?.[0]?.detail).toMatch(/past the latest time/);
	});

	it("an as_of in the future (epoch microseconds, say) is a 400 saying so, not the current state labelled as of then", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, aggregates: { n: { fn: "count", window: "1h" } } } as never);
		await expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id: "k", a: 1 }] }), 200);
		const micros = Date.now() * 1000;
		const r = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?as_of=${micros}`), 400);
		expect(r.errors?.[0]?.pointer).toBe("as_of");
		expect(r.detail).toMatch(/in the future/);
		expect(r.detail).toMatch(/microseconds/);
		const top = await expectProblem(await call("POST", "/v1/lookup", { json: { as_of: micros, requests: [{ dataset: ds, keys: ["k"] }] } }), 400);
		expect(top.errors?.map((e) => e.pointer)).toEqual(["/as_of"]);
		const own = await expectProblem(
			await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"], as_of: new Date(Date.now() + DAY).toISOString() }] } }),
			400,
		);
		expect(own.errors?.map((e) => e.pointer)).toEqual(["/requests/0/as_of"]);
		const gql = await expectJson<{ data: unknown; errors?: { extensions?: { code?: string }; message: string }[] }>(
			await call("POST", "/graphql", { json: { query: `{ ${ds}(keys: ["k"], as_of: "${micros}") { key } }` } }),
			200,
		);
		expect(gql.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
		expect(gql.errors?.[0]?.message).toMatch(/in the future/);
		// A client clock a little ahead (within the skew an event_time may have) still reads.
		await expectJson(await call("GET", `/v1/datasets/${ds}/records/k?as_of=${Date.now() + 60_000}`), 200);
	});

	it("a lookup's as_of of the wrong JSON type says what as_of takes", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		for (const body of [{ requests: [{ dataset: ds, keys: ["k"], as_of: true }] }, { as_of: { at: 1 }, requests: [{ dataset: ds, keys: ["k"] }] }]) {
			const p = await expectProblem(await call("POST", "/v1/lookup", { json: body }), 400);
			expect(p.errors?.[0]?.pointer).toMatch(/as_of$/);
			expect(p.errors?.[0]?.detail).toMatch(/RFC 3339.*epoch milliseconds/);
		}
	});

	it("a lookup's bad as_of is named by its pointer once, not the pointer again inside its detail", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		const cases: [unknown, string, RegExp][] = [
			[{ requests: [{ dataset: ds, keys: ["k"], as_of: "yesterday" }] }, "/requests/0/as_of", /^as_of "yesterday" is not a valid RFC 3339 time/],
			[{ as_of: 1e300, requests: [{ dataset: ds, keys: ["k"] }] }, "/as_of", /^as_of 1e\+300 is past the latest time there is/],
			[{ as_of: "", requests: [{ dataset: ds, keys: ["k"] }] }, "/as_of", /^as_of is empty/],
			[{ as_of: Date.now() + DAY, requests: [{ dataset: ds, keys: ["k"] }] }, "/as_of", /^as_of \S+ is in the future: .*; leave as_of out for current values/],
		];
		for (const [json, pointer, detail] of cases) {
			const p = await expectProblem(await call("POST", "/v1/lookup", { json }), 400);
			expect(p.errors?.map((e) => e.pointer)).toEqual([pointer]);
			expect(p.errors?.[0]?.detail).toMatch(detail);
			expect(p.detail).toBe(`${pointer}: ${p.errors?.[0]?.detail}`);
		}
	});

	it("a lookup's bad top-level as_of is reported with the body's other errors, not alone", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		const p = await expectProblem(
			await call("POST", "/v1/lookup", {
				json: {
					as_of: "yesterday",
					requests: [
						{ dataset: ds, keys: ["k"], fields: ["nope"] },
						{ dataset: `${ds}_missing`, keys: ["k"] },
					],
				},
			}),
			400,
		);
		expect(p.errors?.map((e) => e.pointer)).toEqual(["/as_of", "/requests/0/fields/0", "/requests/1/dataset"]);
		expect(p.errors?.[0]?.detail).toMatch(/"yesterday" is not a valid RFC 3339 time/);
	});

	it("a lookup's as_of before a dataset's history names that dataset and says as_of is before it", async () => {
		const short = await createDataset({ key: "id", fields: { a: "int" }, history_days: 1 } as never);
		const long = await createDataset({ key: "id", fields: { a: "int" }, history_days: 30 } as never);
		const asOf = Date.now() - 3 * DAY;
		const p = await expectProblem(
			await call("POST", "/v1/lookup", {
				json: {
					as_of: asOf,
					requests: [
						{ dataset: long, keys: ["k"] },
						{ dataset: short, keys: ["k"] },
					],
				},
			}),
			400,
		);
		expect(p.errors).toHaveLength(1);
		expect(p.errors?.[0]?.pointer).toBe("/as_of");
		expect(p.errors?.[0]?.detail).toContain(`before the history of dataset "${short}" begins`);
		expect(p.errors?.[0]?.detail).toContain("history_days = 1");
	});
});
