/**
 * A key created with a dataset named twice (`datasets: ["a", "a"]`) was stored and listed with the
 * name twice. The limit is the same either way; the key now holds each name once, in the order sent.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson } from "./helpers";

describe("POST /v1/keys with a dataset named twice", () => {
	it("keeps each name once, in the answer and in the listing", async () => {
		const a = await createDataset();
		const b = await createDataset();
		const created = await expectJson<{ id: string; datasets: string[] }>(
			await call("POST", "/v1/keys", { json: { name: "dup", scopes: ["read"], datasets: [a, b, a] } }),
			201,
		);
		expect(created.datasets).toEqual([a, b]);
		const listed = await expectJson<{ keys: { id: string; datasets: string[] | null }[] }>(await call("GET", "/v1/keys"), 200);
		expect(listed.keys.find((k) => k.id === created.id)?.datasets).toEqual([a, b]);
	});
});
