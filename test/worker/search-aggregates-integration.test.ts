/**
 * Search hits of a dataset with aggregates carry them as any read does: a hit's value is the
 * record's value (REST, and GraphQL's <dataset>_search), and `fields` may project them.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, eventually, expectJson, expectProblem, postEvents } from "./helpers";

interface Hit {
	key: string;
	value: Record<string, unknown> | null;
}

describe("search hits of a dataset with aggregates", () => {
	it("carry the aggregates a record read has, and fields may name them", async () => {
		const spec = {
			key: "user_id",
			fields: { title: "string", price: "float" },
			ttl_seconds: 86_400,
			aggregates: { spend_1h: { fn: "sum", of: "price", window: "1h" }, clicks_1h: { fn: "count", window: "1h" } },
			search: { text: ["title"], filters: ["price"] },
		};
		const ds = await createDataset(spec as never);
		const now = Date.now();
		await postEvents([
			{ dataset: ds, key: "u1", id: "f1", op: "upsert", value: { title: "trail shoes", price: 3 }, event_time: now - 2000 },
			{ dataset: ds, key: "u1", id: "f2", op: "upsert", value: { title: "trail shoes", price: 4 }, event_time: now - 1000 },
		]);
		const record = await eventually(async () => {
			const r = await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${ds}/records/u1`), 200);
			return r.value.clicks_1h === 2 ? r : undefined;
		});
		expect(record.value).toMatchObject({ spend_1h: 7, clicks_1h: 2 });

		const hits = await eventually(async () => {
			const res = await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "trail" } });
			if (res.status !== 200) return undefined;
			const body = await expectJson<{ hits: Hit[] }>(res, 200);
			return body.hits.length ? body.hits : undefined;
		});
		expect(hits.map((h) => h.key)).toEqual(["u1"]);
		expect(hits[0]?.value).toEqual(record.value);

		// A projection may name an aggregate, as a record read's may.
		const projected = await expectJson<{ hits: Hit[] }>(
			await call("POST", `/v1/datasets/${ds}/search`, { json: { filter: { price: { gte: 0 } }, fields: ["spend_1h", "title"] } }),
			200,
		);
		expect(projected.hits[0]?.value).toEqual({ spend_1h: 7, title: "trail shoes" });
		const bad = await expectProblem(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "trail", fields: ["nope"] } }), 400);
		expect(bad.errors).toEqual([{ pointer: "/fields/0", detail: expect.stringMatching(/unknown field "nope".*spend_1h/) }]);

		// GraphQL's search field answers as REST does: the aggregate is there, not null.
		const gql = await expectJson<{ data: Record<string, { hits: Hit[] }>; errors?: unknown }>(
			await call("POST", "/graphql", { json: { query: `{ ${ds}_search(q: "trail") { hits { key value { title spend_1h clicks_1h } } } }` } }),
			200,
		);
		expect(gql.errors).toBeUndefined();
		expect(gql.data[`${ds}_search`]?.hits).toEqual([{ key: "u1", value: { title: "trail shoes", spend_1h: 7, clicks_1h: 2 } }]);
	});
});
