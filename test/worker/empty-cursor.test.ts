/**
 * An empty cursor (`?cursor=`, a script's `cursor=$NEXT` with NEXT unset, or GraphQL's
 * `cursor: ""`) was read as no cursor: the first page again, so a client paging that way went
 * round page 1 for ever. As an empty max_staleness= or since= is, it is now a 400 naming it.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem, postEvents, waitForRecord } from "./helpers";

describe("an empty cursor", () => {
	it("is a 400 naming it on the records page, the history page and GraphQL's history", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" } });
		await postEvents([
			{ dataset: ds, key: "a", op: "upsert", value: { name: "1" } },
			{ dataset: ds, key: "b", op: "upsert", value: { name: "2" } },
		]);
		await waitForRecord(ds, "a");
		await waitForRecord(ds, "b");

		for (const path of [`/v1/datasets/${ds}/records?limit=1&cursor=`, `/v1/datasets/${ds}/records/a/history?limit=1&cursor=`]) {
			const problem = await expectProblem(await call("GET", path), 400);
			expect(problem.detail, path).toContain("cursor");
			expect(problem.errors?.[0]?.pointer, path).toBe("cursor");
		}

		const gql = await expectJson<{ errors?: { message: string; extensions: { code: string } }[] }>(
			await call("POST", "/graphql", { json: { query: `{ ${ds}_history(key: "a", cursor: "") { next_cursor } }` } }),
			200,
		);
		expect(gql.errors?.[0]?.message).toContain("cursor");
		expect(gql.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");

		// A real cursor still pages.
		const first = await expectJson<{ records: { key: string }[]; next_cursor: string }>(await call("GET", `/v1/datasets/${ds}/records?limit=1`), 200);
		const second = await expectJson<{ records: { key: string }[] }>(
			await call("GET", `/v1/datasets/${ds}/records?limit=1&cursor=${encodeURIComponent(first.next_cursor)}`),
			200,
		);
		expect([...first.records, ...second.records].map((r) => r.key)).toEqual(["a", "b"]);
	});
});
