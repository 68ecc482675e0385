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

	it("a lookup's as_of of the wrong JSON type says what as_of takes", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } } as never);
		for (const body of [{ requests: [{ dataset: ds, keys: ["k"], as_of: true }] }, { as_of: { at: 1 }, requests: [{ dataset: ds, keys: ["k"] }] }]) {
			const p = await expectProblem(await call("POST", "/v1/lookup", { json: body }), 400);
			expect(p.errors?.[0]?.pointer).toMatch(/as_of$/);
			expect(p.errors?.[0]?.detail).toMatch(/RFC 3339.*epoch milliseconds/);
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
