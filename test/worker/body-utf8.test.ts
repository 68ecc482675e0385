/**
 * Bodies must be UTF-8 (JSON and NDJSON are). A body in another encoding (Latin-1 from a legacy
 * exporter, say) was decoded with U+FFFD in place of each bad byte and taken: "café" in Latin-1
 * was stored as the key "caf\uFFFD", and every such key collided with the others. Each route that
 * reads a body now refuses one that is not UTF-8 with a 400 naming the byte offset, and applies
 * nothing of it.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, d1Count, expectJson, expectProblem, staysFalse } from "./helpers";

/** The text with each `\xNN` marker replaced by that raw byte (so a body can hold bytes that are not UTF-8). */
function bytes(text: string): Uint8Array {
	const parts: number[] = [];
	for (let i = 0; i < text.length; i++) {
		if (text.startsWith("\\x", i)) {
			parts.push(Number.parseInt(text.slice(i + 2, i + 4), 16));
			i += 3;
		} else parts.push(...new TextEncoder().encode(text[i]));
	}
	return new Uint8Array(parts);
}

describe("bodies that are not UTF-8", () => {
	it("are a 400 naming the byte on every route that reads a body, and nothing is applied", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" } });
		const json = { "content-type": "application/json" };
		const ndjson = { "content-type": "application/x-ndjson" };
		const cases: { method: string; path: string; body: string; headers: Record<string, string> }[] = [
			{ method: "POST", path: "/v1/events", body: `[{"dataset":"${ds}","key":"caf\\xe9","op":"upsert","value":{"name":"x"}}]`, headers: json },
			{ method: "POST", path: "/v1/events", body: `{"dataset":"${ds}","key":"caf\\xe9","op":"upsert","value":{"name":"x"}}\n`, headers: ndjson },
			{ method: "POST", path: `/v1/datasets/${ds}/import`, body: `[{"user_id":"caf\\xe9","name":"x"}]`, headers: json },
			{ method: "POST", path: `/v1/datasets/${ds}/import`, body: `{"user_id":"u1","name":"caf\\xe9"}\n`, headers: ndjson },
			{ method: "POST", path: "/v1/lookup", body: `{"requests":[{"dataset":"${ds}","keys":["caf\\xe9"]}]}`, headers: json },
			{ method: "POST", path: "/v1/keys", body: `{"name":"caf\\xe9","scopes":["read"]}`, headers: json },
			{ method: "PUT", path: `/v1/datasets/${ds}`, body: `{"key":"user_id","fields":{"name":"string"},"description":"caf\\xe9"}`, headers: json },
			// A surrogate encoded in UTF-8 (ED A0 80) and an overlong "/" (C0 AF) are not UTF-8 either.
			{ method: "POST", path: `/v1/datasets/${ds}/search`, body: `{"q":"\\xed\\xa0\\x80"}`, headers: json },
			{ method: "POST", path: "/v1/events", body: `[{"dataset":"${ds}","key":"a\\xc0\\xafb","op":"upsert","value":{"name":"x"}}]`, headers: json },
		];
		for (const c of cases) {
			const body = bytes(c.body);
			const offset = body.findIndex((b) => b >= 0x80);
			const res = await call(c.method, c.path, { body, headers: c.headers });
			const problem = await expectProblem(res, 400);
			expect(problem.detail, `${c.method} ${c.path}`).toContain("UTF-8");
			expect(problem.detail, `${c.method} ${c.path}`).toContain(`byte ${offset}`);
		}
		await staysFalse(async () => (await d1Count(ds)) > 0, 1500, "a record written from a body that is not UTF-8");
		const keys = await expectJson<{ keys: { name: string }[] }>(await call("GET", "/v1/keys"), 200);
		expect(keys.keys.some((k) => k.name.includes("\uFFFD"))).toBe(false);
		const spec = await expectJson<{ description?: string }>(await call("GET", `/v1/datasets/${ds}`), 200);
		expect(spec.description).toBeUndefined();
	});

	it("GraphQL answers a body that is not UTF-8 with a GraphQL error naming the byte", async () => {
		const sent = bytes(`{"query":"{ _datasets }","operationName":"\\xff"}`);
		const res = await call("POST", "/graphql", { body: sent, headers: { "content-type": "application/json", accept: "application/graphql-response+json" } });
		expect(res.status).toBe(400);
		const body = (await res.json()) as { errors: { message: string; extensions: { code: string } }[] };
		expect(body.errors[0]?.message).toContain("UTF-8");
		expect(body.errors[0]?.message).toContain(`byte ${sent.indexOf(0xff)}`);
		expect(body.errors[0]?.extensions.code).toBe("BAD_REQUEST");
	});

	it("UTF-8 text (a BOM, every plane) is still taken", async () => {
		const ds = await createDataset({ key: "user_id", fields: { name: "string" } });
		const text = `\uFEFF[{"user_id":"café 日本 😀","name":"ü"}]`;
		const res = await call("POST", `/v1/datasets/${ds}/import`, { body: new TextEncoder().encode(text), headers: { "content-type": "application/json" } });
		expect(await expectJson<{ imported: number }>(res, 200)).toMatchObject({ imported: 1 });
		const rec = await expectJson<{ value: { name: string } }>(await call("GET", `/v1/datasets/${ds}/records/${encodeURIComponent("café 日本 😀")}`), 200);
		expect(rec.value.name).toBe("ü");
	});
});
