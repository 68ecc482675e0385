/**
 * Bodies are read as sent (README: turn off a log shipper's compression). A gzip body with
 * `Content-Encoding: gzip` was answered "body is not UTF-8 at byte 1" (or, before that check, "not
 * valid JSON"), which does not say what to change; and a body labelled `br` was read as plain text.
 * A body with any Content-Encoding but identity is now a 415 naming the coding, before it is read.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, d1Count, expectJson, expectProblem, staysFalse } from "./helpers";

async function gzip(text: string): Promise<Uint8Array> {
	const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
	return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe("a body with a Content-Encoding", () => {
	it("is a 415 naming the coding on every route that reads a body, and nothing is applied", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" }, ingest: { key: "/user_id" } } as Parameters<typeof createDataset>[0]);
		const events = JSON.stringify([{ dataset: ds, key: "k", op: "upsert", value: { name: "x" } }]);
		const rows = JSON.stringify([{ user_id: "k", name: "x" }]);
		const cases: [string, string, string][] = [
			["POST", "/v1/events", events],
			["POST", `/v1/datasets/${ds}/import`, rows],
			["POST", `/v1/datasets/${ds}/ingest`, rows],
			["POST", "/v1/lookup", JSON.stringify({ requests: [{ dataset: ds, keys: ["k"] }] })],
			["POST", "/v1/keys", JSON.stringify({ name: "gz", scopes: ["read"] })],
			["PUT", `/v1/datasets/${ds}`, JSON.stringify({ key: "user_id", fields: { name: "string" } })],
		];
		for (const [method, path, text] of cases) {
			for (const [coding, body] of [
				["gzip", await gzip(text)],
				["br", new TextEncoder().encode(text)],
			] as const) {
				const res = await call(method, path, { body, headers: { "content-type": "application/json", "content-encoding": coding } });
				const problem = await expectProblem(res, 415);
				expect(problem.detail, `${method} ${path} ${coding}`).toContain(`Content-Encoding ${coding}`);
			}
		}
		const gql = await call("POST", "/graphql", {
			body: await gzip(JSON.stringify({ query: "{ _datasets }" })),
			headers: { "content-type": "application/json", "content-encoding": "gzip" },
		});
		expect(gql.status).toBe(415);
		await staysFalse(async () => (await d1Count(ds)) > 0, 1500, "a record written from a compressed body");
	});

	it("identity is the body as sent", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" } });
		const res = await call("POST", `/v1/datasets/${ds}/import`, {
			body: JSON.stringify([{ user_id: "k", name: "x" }]),
			headers: { "content-type": "application/json", "content-encoding": "identity" },
		});
		expect(await expectJson<{ imported: number }>(res, 200)).toMatchObject({ imported: 1 });
	});
});
