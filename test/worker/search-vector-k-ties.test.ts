/**
 * Vector hits that tie in score at the k-th place: which of them come back is decided by key
 * (ascending), as ties are ordered, not by the order the docs were indexed; and the pages of such a
 * query (cursor) serve the same hits in the same order as one page.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson } from "./helpers";

interface Page {
	hits: { key: string; score: number }[];
	next_cursor: string | null;
}

let ds = "";
const search = async (body: Record<string, unknown>) => expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: body }), 200);
const keysOf = (page: Page) => page.hits.map((h) => h.key);

beforeAll(async () => {
	ds = await createDataset({
		key: "id",
		fields: { t: "string", n: "int", v: { type: "vector", dim: 2 } },
		ttl_seconds: 3600,
		search: { text: ["t"], filters: ["n"], vector: "v" },
	} as never);
	// One at a time in reverse key order, so doc ids (index order) run against key order. k1..k5
	// point one way (k5 at twice the length: the same direction, the same score), k0 another.
	const docs: [string, number[]][] = [
		["k5", [2, 2]],
		["k4", [1, 1]],
		["k3", [1, 1]],
		["k2", [1, 1]],
		["k1", [1, 1]],
		["k0", [1, 0]],
	];
	for (const [id, v] of docs) await expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id, t: "same words", n: 1, v }] }), 200);
});

describe("vector hits tied at the k-th place", () => {
	it("are cut by key: the first k keys of the tie come back", async () => {
		const page = await search({ vector: { value: [1, 1], k: 2 } });
		expect(keysOf(page)).toEqual(["k1", "k2"]);
		expect(new Set(page.hits.map((h) => h.score)).size).toBe(1);
		expect(keysOf(await search({ vector: { value: [1, 1], k: 4 } }))).toEqual(["k1", "k2", "k3", "k4"]);
	});

	it("are cut by key with a filter too (ranked, then filtered)", async () => {
		expect(keysOf(await search({ vector: { value: [1, 1], k: 2 }, filter: { n: 1 } }))).toEqual(["k1", "k2"]);
	});

	it("are cut by key by a record's own vector, the record left out", async () => {
		expect(keysOf(await search({ vector: { key: "k1", k: 2 } }))).toEqual(["k2", "k3"]);
	});

	it("are cut by key in a hybrid query's vector ranking", async () => {
		// Text ranks k0..k5 alike (by key); the vector's k = 2 are k1 and k2, which the fusion puts first.
		expect(keysOf(await search({ q: "same", vector: { value: [1, 1], k: 2 } })).slice(0, 2)).toEqual(["k1", "k2"]);
	});

	it("page through the cursor in the same order as one page, each once", async () => {
		const whole = keysOf(await search({ vector: { value: [1, 1], k: 3 } }));
		expect(whole).toEqual(["k1", "k2", "k3"]);
		const paged: string[] = [];
		let cursor: string | null | undefined;
		do {
			const page = await search({ vector: { value: [1, 1], k: 3 }, limit: 1, ...(cursor ? { cursor } : {}) });
			paged.push(...keysOf(page));
			cursor = page.next_cursor;
		} while (cursor);
		expect(paged).toEqual(whole);
	});
});

describe("vectors of one direction", () => {
	it("tie (at float32 precision, as vectors are stored) and come by key, not by the rounding of their sums", async () => {
		const three = await createDataset({ key: "id", fields: { v: { type: "vector", dim: 3 } }, ttl_seconds: 3600, search: { vector: "v" } } as never);
		// b is 9 times a: the same direction, whose sums in double precision differ in the last digits.
		for (const [id, v] of [
			["b", [9, 66.6, 81.9]],
			["a", [1, 7.4, 9.1]],
		] as const) {
			await expectJson(await call("POST", `/v1/datasets/${three}/import`, { json: [{ id, v }] }), 200);
		}
		const page = await expectJson<Page>(await call("POST", `/v1/datasets/${three}/search`, { json: { vector: { value: [1, 2, 3] } } }), 200);
		expect(keysOf(page)).toEqual(["a", "b"]);
		expect(page.hits[0]?.score).toBe(page.hits[1]?.score);
	});
});
