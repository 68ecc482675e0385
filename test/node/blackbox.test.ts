// Black-box: starts the real `npm run dev` on a free port and drives the whole flow over HTTP.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../scripts/lib/redis-server.ts";

const root = path.join(import.meta.dirname, "..", "..");
let dev: ChildProcess;
let base = "";
let adminKey = "";
let output = "";
const persist = mkdtempSync(path.join(tmpdir(), "hotpath-blackbox-"));

const call = (p: string, init: RequestInit & { key?: string } = {}) =>
	fetch(`${base}${p}`, {
		...init,
		headers: { authorization: `Bearer ${init.key ?? adminKey}`, "content-type": "application/json", ...(init.headers as object) },
	});

async function eventually<T>(fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v !== undefined) return v;
		if (Date.now() > end) throw new Error("timed out");
		await new Promise((r) => setTimeout(r, 150));
	}
}

beforeAll(async () => {
	const port = await freePort();
	base = `http://127.0.0.1:${port}`;
	dev = spawn("npm", ["run", "dev", "--", "--port", String(port), "--persist-to", persist], { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true });
	dev.stdout?.on("data", (d: Buffer) => (output += d.toString()));
	dev.stderr?.on("data", (d: Buffer) => (output += d.toString()));
	await eventually(async () => (output.includes("[hotpath] ready at") ? true : undefined), 90_000).catch((e) => {
		throw new Error(`npm run dev did not become ready: ${e}\n${output.slice(-3000)}`);
	});
	adminKey = readFileSync(path.join(root, ".dev.vars"), "utf8").match(/HOTPATH_ADMIN_KEY="?([^"\n]+)/)?.[1] ?? "";
	expect(adminKey).not.toBe("");
}, 120_000);

afterAll(async () => {
	if (dev?.pid) {
		// The whole process group: npm, node scripts/dev.ts, wrangler, workerd, redis-server.
		try {
			process.kill(-dev.pid, "SIGTERM");
		} catch {}
		await new Promise((r) => setTimeout(r, 1500));
		try {
			process.kill(-dev.pid, "SIGKILL");
		} catch {}
	}
	rmSync(persist, { recursive: true, force: true });
});

describe("npm run dev, over HTTP", () => {
	it("passes --port through and runs under the project's Node 22", () => {
		expect(output).toContain(`Ready on ${base}`);
		expect(output).toMatch(/hot tier \(Redis\) on:/);
	});

	it("serves the seeded demo dataset", async () => {
		// The demo events go through the queue: on a busy machine they can land a moment after "ready".
		const res = await eventually(async () => {
			const r = await call("/v1/datasets/demo_users/records/u1");
			if (r.status === 200) return r;
			await r.body?.cancel();
			return undefined;
		});
		expect(res.status).toBe(200);
		expect(await res.json()).toMatchObject({ dataset: "demo_users", key: "u1", status: "present", value: { country: "DE", age: 34 } });
	});

	it("reports every tier up in /healthz", async () => {
		// Three slow Redis calls while the machine is busy starting up open the breaker for a moment;
		// it must close again by itself.
		const res = await eventually(async () => {
			const r = await fetch(`${base}/healthz`);
			const body = (await r.clone().json()) as { status?: string };
			return body.status === "ok" ? r : undefined;
		}, 10_000);
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({ status: "ok", tiers: { l0: "up", redis: "up", kv: "up", d1: "up" } });
	});

	it("creates a dataset, ingests shuffled duplicated events (JSON and NDJSON) and converges", async () => {
		expect(
			(await call("/v1/datasets/bb_items", { method: "PUT", body: JSON.stringify({ key: "item_id", fields: { price: "float", tags: "string[]" } }) })).status,
		).toBe(201);
		const t = Date.now() - 60_000;
		const events = [
			{ id: "e1", dataset: "bb_items", key: "i1", op: "upsert", value: { price: 1, tags: ["a"] }, event_time: t },
			{ id: "e2", dataset: "bb_items", key: "i1", op: "patch", value: { price: 2 }, event_time: t + 1000 },
			{ id: "e3", dataset: "bb_items", key: "i1", op: "delete", event_time: t + 2000 },
			{ id: "e4", dataset: "bb_items", key: "i1", op: "patch", value: { tags: ["z"] }, event_time: t + 3000 },
			{ id: "e5", dataset: "bb_items", key: "i2", op: "upsert", value: { price: 9 }, event_time: new Date(t).toISOString() },
		];
		// Newest first, then again as NDJSON in another order: duplicates must not matter.
		const first = await call("/v1/events", { method: "POST", body: JSON.stringify([...events].reverse()) });
		expect(first.status).toBe(202);
		expect(await first.json()).toEqual({ accepted: 5, rejected: [] });
		const nd = [events[2], events[0], events[4], events[1], events[3]].map((e) => JSON.stringify(e)).join("\n");
		const second = await call("/v1/events", { method: "POST", body: nd, headers: { "content-type": "application/x-ndjson" } });
		expect(second.status).toBe(202);

		// In (event_time, id) order: upsert, patch, delete, patch -> only the last patch's field survives.
		const i1 = await eventually(async () => {
			const r = await call("/v1/datasets/bb_items/records/i1");
			const body = r.status === 200 ? ((await r.json()) as { value: unknown; event_time: string }) : undefined;
			return body && JSON.stringify(body.value) === JSON.stringify({ tags: ["z"] }) ? body : undefined;
		});
		expect(i1.event_time).toBe(new Date(t + 3000).toISOString());

		const lookup = await call("/v1/lookup", {
			method: "POST",
			body: JSON.stringify({ requests: [{ dataset: "bb_items", keys: ["i2", "missing", "i1"], fields: ["price"] }] }),
		});
		expect(lookup.status).toBe(200);
		expect(await lookup.json()).toMatchObject({
			results: [
				{
					dataset: "bb_items",
					records: [
						{ key: "i2", status: "present", value: { price: 9 } },
						{ key: "missing", status: "not_found", value: null },
						{ key: "i1", status: "present", value: { price: null } },
					],
				},
			],
		});
	});

	it("answers bad input with 4xx problem+json, never 5xx", async () => {
		const cases: [string, RequestInit, number][] = [
			["/v1/events", { method: "POST", body: "{not json" }, 400],
			["/v1/events", { method: "POST", body: JSON.stringify([{ dataset: "bb_items", key: "x", op: "upsert", value: { price: "cheap" } }]) }, 400],
			["/v1/datasets/bb_items", { method: "PUT", body: JSON.stringify({ key: "item_id", fields: { price: "int", tags: "string[]" } }) }, 409],
			["/v1/datasets/bb_items/records/nope", {}, 404],
			["/v1/lookup", { method: "POST", body: JSON.stringify({ requests: [{ dataset: "nope", keys: ["a"] }] }) }, 400],
			[`/v1/datasets/bb_items/records/${"k".repeat(600)}`, {}, 400],
		];
		for (const [p, init, status] of cases) {
			const res = await call(p, init);
			expect({ p, status: res.status }).toEqual({ p, status });
			expect(res.headers.get("content-type")).toContain("application/problem+json");
			const body = (await res.json()) as { detail: string; status: number };
			expect(body.status).toBe(status);
			expect(body.detail.length).toBeGreaterThan(5);
		}
		const big = await call("/v1/events", { method: "POST", body: "x".repeat(6 * 1024 * 1024) });
		expect(big.status).toBe(413);
	});

	it("creates a scoped key, enforces it, and revokes it", async () => {
		const created = await call("/v1/keys", { method: "POST", body: JSON.stringify({ name: "reader", scopes: ["read"] }) });
		expect(created.status).toBe(201);
		const { id, key } = (await created.json()) as { id: string; key: string };
		expect((await call("/v1/datasets/demo_users/records/u2", { key })).status).toBe(200);
		expect((await call("/v1/events", { key, method: "POST", body: "[]" })).status).toBe(403);
		expect((await call("/v1/datasets/demo_users/records/u2", { key: "wrong" })).status).toBe(401);
		expect((await call(`/v1/keys/${id}`, { method: "DELETE" })).status).toBe(204);
		expect((await call("/v1/datasets/demo_users/records/u2", { key })).status).toBe(401);
	});
});
