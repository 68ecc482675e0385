/**
 * History and search fields each do their own D1 work (records fields share one read): an
 * operation of many aliased ones is refused before it runs, with TOO_COMPLEX, rather than passing
 * a Worker invocation's cap on D1 queries and failing at run time as an outage.
 */
import { describe, expect, it } from "vitest";
import { MAX_READ_FIELDS } from "../../src/graphql/limits";
import { call, createDataset, expectJson } from "./helpers";

interface GqlBody {
	data?: Record<string, unknown> | null;
	errors?: { message: string; extensions: { code: string } }[];
}

const gql = async (query: string) => expectJson<GqlBody>(await call("POST", "/graphql", { json: { query } }), 200);

describe("history and search fields per operation", () => {
	it("are bounded: past MAX_READ_FIELDS (aliases, fragments and every use counted) the operation is TOO_COMPLEX and nothing runs", async () => {
		const ds = await createDataset({ key: "id", fields: { title: "string" }, ttl_seconds: 3600, search: { text: ["title"] } } as never);
		const history = (i: number) => `h${i}: ${ds}_history(key: "k", limit: 1) { next_cursor }`;
		const searchField = (i: number) => `s${i}: ${ds}_search(limit: 1) { took_ms }`;
		const half = Math.ceil(MAX_READ_FIELDS / 2);
		const within = [...Array.from({ length: half }, (_, i) => history(i)), ...Array.from({ length: MAX_READ_FIELDS - half }, (_, i) => searchField(i))];
		const ok = await gql(`{ ${within.join(" ")} }`);
		expect(ok.errors?.filter((e) => e.extensions.code === "TOO_COMPLEX")).toBeUndefined();

		const many = await gql(`{ ${Array.from({ length: 300 }, (_, i) => history(i)).join(" ")} }`);
		expect(many.data).toBeUndefined();
		expect(many.errors).toEqual([
			expect.objectContaining({
				message: expect.stringMatching(new RegExp(`300 history and search fields; the limit is ${MAX_READ_FIELDS}`)),
				extensions: { code: "TOO_COMPLEX" },
			}),
		]);

		// A fragment used twice counts twice; one more than the bound is refused.
		const frag = `fragment F on Query { ${Array.from({ length: half }, (_, i) => searchField(i)).join(" ")} }`;
		const twice = await gql(`{ ...F a: _datasets ... on Query { ...F } x: ${ds}_history(key: "k") { next_cursor } } ${frag}`);
		expect(twice.errors?.[0]?.extensions.code).toBe("TOO_COMPLEX");

		// Records fields share one read and are not counted.
		const records = await gql(`{ ${Array.from({ length: 300 }, (_, i) => `r${i}: ${ds}(keys: ["k"]) { key }`).join(" ")} }`);
		expect(records.errors).toBeUndefined();
	});
});
