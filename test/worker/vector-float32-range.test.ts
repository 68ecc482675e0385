/**
 * Vectors are kept as float32 (the search index's blobs). A vector value beyond float32's range
 * (1e39) was accepted by POST /v1/events and import and stored, but the search index could not
 * hold it, so the record was silently missing from every vector search ("has no vector"), while
 * a query vector of the same numbers is refused with a 400. Such a value is now rejected by index,
 * naming the field and the range.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, waitForRecord } from "./helpers";

describe("vector values beyond float32's range", () => {
	it("are rejected by index on events and import, naming the field; values within it are taken", async () => {
		const ds = await createDataset({ key: "id", fields: { emb: { type: "vector", dim: 2 } } });
		const events = await expectJson<{ accepted: number; rejected: { index: number; error: string }[] }>(
			await call("POST", "/v1/events", {
				json: [
					{ dataset: ds, key: "big", op: "upsert", value: { emb: [1e39, 0] } },
					{ dataset: ds, key: "neg", op: "upsert", value: { emb: [0, -3.5e38] } },
					{ dataset: ds, key: "ok", op: "upsert", value: { emb: [3.4e38, -1e-30] } },
				],
			}),
			202,
		);
		expect(events.accepted).toBe(1);
		expect(events.rejected.map((r) => r.index)).toEqual([0, 1]);
		for (const r of events.rejected) {
			expect(r.error).toContain("emb");
			expect(r.error).toContain("float32");
		}
		const imported = await expectJson<{ imported: number; rejected: { index: number; error: string }[] }>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ id: "i1", emb: [1, 2] },
					{ id: "i2", emb: [1e39, 2] },
				],
			}),
			200,
		);
		expect(imported.imported).toBe(1);
		expect(imported.rejected.map((r) => r.index)).toEqual([1]);
		expect(imported.rejected[0]?.error).toContain("float32");
		await waitForRecord(ds, "ok");
	});
});
