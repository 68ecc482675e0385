/**
 * A path segment whose percent-encoding is not UTF-8 (`caf%E9`, Latin-1's "café") or not
 * percent-encoding at all (`100%`) was taken as written: the router leaves what it cannot decode
 * as it is, so GET /records/caf%E9 read the record whose key is the six characters "caf%E9" (and
 * `caf%C3%A9%E9` the key "café%E9"), a guess at what the client meant. Such a path is now a 400
 * naming the segment, on every route.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem, postEvents, waitForRecord } from "./helpers";

describe("paths whose percent-encoding is not UTF-8", () => {
	it("are a 400 naming the segment, never a read of the key as written", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" } });
		await postEvents([
			{ dataset: ds, key: "caf%E9", op: "upsert", value: { name: "literal" } },
			{ dataset: ds, key: "café%E9", op: "upsert", value: { name: "half" } },
			{ dataset: ds, key: "100%", op: "upsert", value: { name: "pct" } },
		]);
		await waitForRecord(ds, "caf%E9");
		await waitForRecord(ds, "café%E9");
		await waitForRecord(ds, "100%");

		for (const [path, segment] of [
			[`/v1/datasets/${ds}/records/caf%E9`, "caf%E9"],
			[`/v1/datasets/${ds}/records/caf%C3%A9%E9`, "caf%C3%A9%E9"],
			[`/v1/datasets/${ds}/records/100%`, "100%"],
			[`/v1/datasets/${ds}/records/caf%E9/history`, "caf%E9"],
			[`/v1/datasets/${ds}%FF/records/k`, `${ds}%FF`],
			["/v1/keys/key%E9", "key%E9"],
		] as const) {
			const method = path.startsWith("/v1/keys") ? "DELETE" : "GET";
			const problem = await expectProblem(await call(method, path), 400);
			expect(problem.detail, path).toContain(segment);
			expect(problem.detail, path).toContain("UTF-8");
		}

		// Correctly encoded, the same keys read as ever.
		for (const [key, name] of [
			["caf%E9", "literal"],
			["café%E9", "half"],
			["100%", "pct"],
		] as const) {
			const rec = await expectJson<{ value: { name: string } }>(await call("GET", `/v1/datasets/${ds}/records/${encodeURIComponent(key)}`), 200);
			expect(rec.value.name).toBe(name);
		}
	});
});
