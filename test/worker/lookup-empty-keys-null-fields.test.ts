/**
 * POST /v1/lookup and GraphQL read the same way at the edges: no keys is an empty records list
 * (as GraphQL's keys: [] and a Redis MGET of nothing), and fields: null means every field (as
 * GraphQL's fields: null); /openapi.json says so.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { applyDirect, call, createDataset, expectJson, uniqueName, userSpec } from "./helpers";

interface LookupBody {
	results: { dataset: string; records: { key: string; status: string; value: Record<string, unknown> | null }[] }[];
}
interface GqlBody {
	data?: Record<string, { key: string; value: Record<string, unknown> | null }[]> | null;
	errors?: unknown[];
}

const lookup = async (body: unknown) => expectJson<LookupBody>(await call("POST", "/v1/lookup", { json: body }), 200);
const gql = async (query: string) => expectJson<GqlBody>(await call("POST", "/graphql", { json: { query } }), 200);

let users = "";

beforeAll(async () => {
	users = await createDataset(userSpec(3600));
	await applyDirect([{ id: uniqueName("e"), dataset: users, key: "u1", op: "upsert", value: { age: 7, name: "seven" }, time: Date.now() - 1000 }]);
});

describe("POST /v1/lookup agrees with GraphQL", () => {
	it("keys: [] answers an empty records list, in request order beside the others, as GraphQL's keys: []", async () => {
		const body = await lookup({
			requests: [
				{ dataset: users, keys: [] },
				{ dataset: users, keys: ["u1"], fields: ["age"] },
			],
		});
		expect(body.results).toEqual([
			{ dataset: users, records: [] },
			{ dataset: users, records: [expect.objectContaining({ key: "u1", status: "present", value: { age: 7 } })] },
		]);
		const viaGraphql = await gql(`{ ${users}(keys: []) { key } }`);
		expect(viaGraphql).toEqual({ data: { [users]: [] } });
	});

	it("requests: [] answers an empty results list, as keys: [] answers an empty records list", async () => {
		expect(await lookup({ requests: [] })).toEqual({ results: [] });
		expect(await lookup({ requests: [], max_staleness: 5, as_of: null })).toEqual({ results: [] });
		// It touched no tier: no X-Hotpath-Tier or Server-Timing, rather than empty ones.
		const res = await call("POST", "/v1/lookup", { json: { requests: [] } });
		expect(res.status).toBe(200);
		expect(res.headers.has("x-hotpath-tier")).toBe(false);
		expect(res.headers.has("server-timing")).toBe(false);
	});

	it("fields: null returns every field, as leaving fields out does and as GraphQL's fields: null", async () => {
		const body = await lookup({ requests: [{ dataset: users, keys: ["u1"], fields: null }] });
		expect(body.results[0]?.records.map((r) => r.value)).toEqual([{ age: 7, name: "seven" }]);
		const viaGraphql = await gql(`{ ${users}(keys: ["u1"], fields: null) { key value { age name } } }`);
		expect(viaGraphql.data?.[users]?.map((r) => r.value)).toEqual([{ age: 7, name: "seven" }]);
	});

	it("/openapi.json describes it: requests and keys may be empty, fields may be null", async () => {
		const doc = await expectJson<{ paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: unknown }> } }>> }>(
			await call("GET", "/openapi.json", { key: null }),
			200,
		);
		const body = doc.paths["/v1/lookup"]?.post?.requestBody.content["application/json"]?.schema as {
			properties: { requests: { items: { properties: { keys: Record<string, unknown>; fields: Record<string, unknown> } } } };
		};
		expect((body.properties.requests as Record<string, unknown>).minItems).toBeUndefined();
		const { keys, fields } = body.properties.requests.items.properties;
		expect(keys.type).toBe("array");
		expect(keys.minItems).toBeUndefined();
		// A nullable array, in whichever form the generator writes it (3.1: a type list, or anyOf with null).
		const nullable = JSON.stringify(fields);
		expect(nullable).toMatch(/"null"/);
		expect(nullable).toMatch(/"array"/);
	});
});
