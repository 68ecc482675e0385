import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";
import { eventually } from "./helpers";

const admin = { authorization: "Bearer test-admin-key", "content-type": "application/json" };
const call = (path: string, init: RequestInit = {}) =>
	exports.default.fetch(`http://hotpath${path}`, { ...init, headers: { ...admin, ...(init.headers as object) } });

it("ingests through the queue and serves the record", async () => {
	let res = await call("/v1/datasets/flow_users", {
		method: "PUT",
		body: JSON.stringify({ key: "user_id", fields: { age: "int", name: "string", emb: { type: "vector", dim: 3 } }, ttl_seconds: 3600 }),
	});
	expect(res.status).toBe(201);
	res = await call("/v1/events", {
		method: "POST",
		body: JSON.stringify([
			{ dataset: "flow_users", key: "u1", op: "upsert", value: { age: 30, name: "Ann", emb: [1, 2, 3] }, event_time: Date.now() - 1000 },
			{ dataset: "flow_users", key: "u1", op: "patch", value: { age: 31 }, event_time: Date.now() },
			{ dataset: "nope", key: "u1", op: "upsert", value: {} },
		]),
	});
	expect(res.status).toBe(202);
	const body = await res.json();
	expect(body).toEqual({ accepted: 2, rejected: [{ index: 2, error: 'dataset "nope" does not exist' }] });
	const rec = await eventually(
		async () => {
			const r = await call("/v1/datasets/flow_users/records/u1");
			return r.status === 200
				? { body: (await r.json()) as Record<string, unknown>, tier: r.headers.get("x-hotpath-tier"), timing: r.headers.get("server-timing") }
				: undefined;
		},
		{ timeoutMs: 15_000, what: "u1 readable" },
	);
	expect(rec.body).toMatchObject({ dataset: "flow_users", key: "u1", status: "present", value: { age: 31, name: "Ann", emb: [1, 2, 3] } });
	// Server-Timing has an entry for every tier the read touched, the answering one included.
	expect(rec.tier).toMatch(/^(l0|redis|kv|d1)$/);
	expect(rec.timing).toContain(`${rec.tier};dur=`);
	const again = await call("/v1/datasets/flow_users/records/u1");
	expect(again.headers.get("x-hotpath-tier")).toBe("l0");
	const lk = await call("/v1/lookup", { method: "POST", body: JSON.stringify({ requests: [{ dataset: "flow_users", keys: ["u1", "u2"], fields: ["age"] }] }) });
	expect(lk.status).toBe(200);
	expect(await lk.json()).toMatchObject({
		results: [
			{
				dataset: "flow_users",
				records: [
					{ key: "u1", status: "present", value: { age: 31 } },
					{ key: "u2", status: "not_found", value: null },
				],
			},
		],
	});
});
