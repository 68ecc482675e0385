/**
 * Text hits of equal score come in key order ("ties by key"), whether or not the query has a filter:
 * a filter that every doc passes does not reorder them.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, eventually, expectJson, postEvents } from "./helpers";

interface Page {
	hits: { key: string; score: number }[];
}

describe("text hits of equal score", () => {
	it("come in key order with or without a filter", async () => {
		const ds = await createDataset({ key: "id", fields: { t: "string", n: "int" }, ttl_seconds: 3600, search: { text: ["t"], filters: ["n"] } } as never);
		// Indexed in reverse key order, one at a time, so index order is not key order.
		const keys = ["k5", "k4", "k3", "k2", "k1"];
		for (const k of keys) {
			await postEvents([{ dataset: ds, key: k, op: "upsert", value: { t: "same words here", n: 1 } }]);
			await eventually(async () => {
				const res = await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "same", limit: 100 } });
				if (res.status !== 200) return undefined;
				const page = (await res.json()) as Page;
				return page.hits.some((h) => h.key === k) ? true : undefined;
			});
		}
		const plain = await expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "same" } }), 200);
		const filtered = await expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "same", filter: { n: 1 } } }), 200);
		expect(new Set(plain.hits.map((h) => h.score)).size).toBe(1);
		expect(plain.hits.map((h) => h.key)).toEqual(["k1", "k2", "k3", "k4", "k5"]);
		expect(filtered.hits.map((h) => h.key)).toEqual(["k1", "k2", "k3", "k4", "k5"]);
		// Paged, the same order.
		const first = await expectJson<Page & { next_cursor: string }>(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "same", limit: 2 } }), 200);
		const second = await expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "same", limit: 3, cursor: first.next_cursor } }), 200);
		expect([...first.hits, ...second.hits].map((h) => h.key)).toEqual(["k1", "k2", "k3", "k4", "k5"]);
	});
});

describe("vector and hybrid hits of equal score", () => {
	it("come in key order too, not in the order the docs were indexed", async () => {
		const ds = await createDataset({
			key: "id",
			fields: { t: "string", v: { type: "vector", dim: 2 } },
			ttl_seconds: 3600,
			search: { text: ["t"], vector: "v" },
		} as never);
		// Indexed in reverse key order, one at a time: doc ids run against key order.
		const docs: [string, string, number[]][] = [
			["k3", "same words", [1, 1]],
			["k2", "same words", [1, 1]],
			["k1", "same words", [1, 1]],
			["k0", "other", [1, 0]],
		];
		for (const [k, t, v] of docs) {
			await expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id: k, t, v }] }), 200);
		}
		const search = async (body: Record<string, unknown>) => (await expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: body }), 200)).hits;
		const vector = await search({ vector: { value: [1, 1] } });
		expect(vector.map((h) => h.key)).toEqual(["k1", "k2", "k3", "k0"]);
		expect(new Set(vector.slice(0, 3).map((h) => h.score)).size).toBe(1);
		// Text ranks k1, k2, k3 (equal BM25, by key); the vector k1, k2, k3 as well: fused, equal again, by key.
		const hybrid = await search({ q: "same", vector: { value: [1, 1] } });
		expect(hybrid.map((h) => h.key)).toEqual(["k1", "k2", "k3", "k0"]);
		// By a record's own vector: k1 left out, its equals by key.
		const byKey = await search({ vector: { key: "k1" } });
		expect(byKey.map((h) => h.key)).toEqual(["k2", "k3", "k0"]);
	});
});
