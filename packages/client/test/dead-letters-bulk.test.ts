// replayAll and purgeAll mean every dead letter, but the bulk routes handle at most 1,000 a call
// ("call again for more"): one call left the rest behind while reporting success.
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Hotpath } from "../src/index.ts";

let server: Server | undefined;

afterEach(async () => {
	server?.closeAllConnections();
	await new Promise((r) => server?.close(r));
	server = undefined;
});

/**
 * A stand-in for the bulk routes over `total` letters: each call handles up to its `limit` (the
 * server's cap, 1,000), and a replay up to `bodyBudget` letters (the server's budget of bodies), saying `more` when it stopped there.
 */
async function bulkServer(total: number, kvOnly = false, bodyBudget = Number.POSITIVE_INFINITY): Promise<{ url: string; calls: string[] }> {
	let left = total;
	const calls: string[] = [];
	server = createServer((req, res) => {
		calls.push(`${req.method} ${req.url}`);
		const limit = Math.min(Number(new URL(req.url ?? "/", "http://x").searchParams.get("limit") ?? 1000), 1000);
		const n = Math.min(left, limit, req.method === "DELETE" ? limit : bodyBudget);
		left -= n;
		const more = req.method !== "DELETE" && n === bodyBudget && left > 0 ? { more: true } : {};
		const count = req.method === "DELETE" ? { purged: n } : { replayed: n, ...more };
		res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(kvOnly ? { ...count, incomplete: "D1 refused" } : count));
	});
	await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
	const address = server.address();
	return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, calls };
}

describe("bulk dead-letter calls cover every letter", () => {
	it("purgeAll purges 2,500 letters in three calls and says 2,500", async () => {
		const { url, calls } = await bulkServer(2500);
		expect(await new Hotpath({ url }).deadLetters.purgeAll({ dataset: "big" })).toEqual({ purged: 2500 });
		expect(calls).toHaveLength(3);
		expect(calls[0]).toBe("DELETE /v1/dead-letters?dataset=big&limit=1000");
	});

	it("purgeAll passes replayed (only replayed letters, or only those never replayed) to every call", async () => {
		const { url, calls } = await bulkServer(1500);
		expect(await new Hotpath({ url }).deadLetters.purgeAll({ replayed: true })).toEqual({ purged: 1500 });
		expect(calls).toEqual(["DELETE /v1/dead-letters?limit=1000&replayed=true", "DELETE /v1/dead-letters?limit=1000&replayed=true"]);
		const never = await bulkServer(10);
		expect(await new Hotpath({ url: never.url }).deadLetters.purgeAll({ replayed: false })).toEqual({ purged: 10 });
		expect(never.calls[0]).toBe("DELETE /v1/dead-letters?limit=1000&replayed=false");
	});

	it("replayAll replays 1,200 letters in two calls and says 1,200", async () => {
		const { url, calls } = await bulkServer(1200);
		expect(await new Hotpath({ url }).deadLetters.replayAll()).toEqual({ replayed: 1200 });
		expect(calls).toEqual(["POST /v1/dead-letters/replay?limit=1000", "POST /v1/dead-letters/replay?limit=1000"]);
	});

	it("replayAll goes on after a call that stopped at its budget of bodies (fewer than a page, with more): 450 letters, 200 a call", async () => {
		const { url, calls } = await bulkServer(450, false, 200);
		expect(await new Hotpath({ url }).deadLetters.replayAll()).toEqual({ replayed: 450 });
		expect(calls).toHaveLength(3);
	});

	it("replayAll sends back the before each answer gives, so the run goes on below the letters it took", async () => {
		const calls: string[] = [];
		const answers = [{ replayed: 3, more: true, before: 90 }, { replayed: 2, more: true, before: 40 }, { replayed: 1 }];
		server = createServer((req, res) => {
			calls.push(`${req.url}`);
			res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answers[calls.length - 1] ?? { replayed: 0 }));
		});
		await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
		const address = server.address();
		const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
		expect(await new Hotpath({ url }).deadLetters.replayAll({ dataset: "d" })).toEqual({ replayed: 6 });
		expect(calls).toEqual([
			"/v1/dead-letters/replay?dataset=d&limit=1000",
			"/v1/dead-letters/replay?dataset=d&limit=1000&before=90",
			"/v1/dead-letters/replay?dataset=d&limit=1000&before=40",
		]);
	});

	it("a full page exactly ends with one more call that handles none", async () => {
		const { url, calls } = await bulkServer(1000);
		expect(await new Hotpath({ url }).deadLetters.purgeAll()).toEqual({ purged: 1000 });
		expect(calls).toHaveLength(2);
	});

	it("stops at an incomplete answer (D1 refused): the next call would handle the same letters in KV", async () => {
		const { url, calls } = await bulkServer(5000, true);
		expect(await new Hotpath({ url }).deadLetters.replayAll()).toEqual({ replayed: 1000, incomplete: "D1 refused" });
		expect(calls).toHaveLength(1);
	});
});

describe("deadLetters.get", () => {
	it("reads one letter, with its body, from GET /v1/dead-letters/:id (a listing leaves out bodies past its budget)", async () => {
		const calls: string[] = [];
		server = createServer((req, res) => {
			calls.push(`${req.method} ${req.url}`);
			res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: 7, body: { v: 1, events: [] } }));
		});
		await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
		const address = server.address();
		const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
		expect(await new Hotpath({ url }).deadLetters.get("kv:a/b")).toMatchObject({ id: 7, body: { v: 1, events: [] } });
		expect(calls).toEqual(["GET /v1/dead-letters/kv%3Aa%2Fb"]);
	});
});
