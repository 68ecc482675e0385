// Cancelling calls: every method takes a `signal`; an aborted call rejects with the signal's reason
// (an AbortError), cuts its request, and makes no retry. Against a tiny local HTTP server.
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { Hotpath, HotpathError } from "../src/index.ts";
import { scripted } from "./scripted-server.ts";

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
const unavailable = (res: ServerResponse) =>
	res
		.writeHead(503, { "content-type": "application/problem+json", "retry-after": "2" })
		.end(JSON.stringify({ type: "https://hotpath.dev/problems/unavailable", title: "Unavailable", status: 503, detail: "retry shortly" }));
const never = () => {};

const spec = { name: "d", key: "k", fields: {}, ttl_seconds: 60 };

/** The rejection of `p`, and how long it took to come. */
async function rejection(p: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
	const started = Date.now();
	const error = await p.then(
		() => undefined,
		(e: unknown) => e,
	);
	return { error, ms: Date.now() - started };
}

describe("signal", () => {
	it("aborts a call in flight: it rejects with an AbortError at once, and the request is cut", async () => {
		const { url, seen } = await scripted(never);
		const hp = new Hotpath({ url, key: "k1", timeoutMs: 10_000 });
		const controller = new AbortController();
		setTimeout(() => controller.abort(), 100);
		const { error, ms } = await rejection(hp.get("d", "k", { signal: controller.signal }));
		expect(error).toMatchObject({ name: "AbortError" });
		expect(error).not.toBeInstanceOf(HotpathError);
		expect(ms).toBeLessThan(2000);
		expect(seen).toHaveLength(1);
		await new Promise<void>((r) => (seen[0]?.req.socket.destroyed ? r() : seen[0]?.req.socket.once("close", () => r())));
	});

	it("rejects with the reason the signal was aborted with", async () => {
		const { url } = await scripted(never);
		const hp = new Hotpath({ url, timeoutMs: 10_000 });
		const reason = new Error("the user went away");
		const controller = new AbortController();
		setTimeout(() => controller.abort(reason), 50);
		expect((await rejection(hp.search("d", { q: "x" }, { signal: controller.signal }))).error).toBe(reason);
	});

	it("already aborted: sends nothing", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 200, { datasets: [spec] }));
		const hp = new Hotpath({ url });
		const { error } = await rejection(hp.datasets.list({ signal: AbortSignal.abort() }));
		expect(error).toMatchObject({ name: "AbortError" });
		await new Promise((r) => setTimeout(r, 100));
		expect(seen).toHaveLength(0);
	});

	it("stops the retries: aborted while waiting out a 503's Retry-After, no further attempt is made", async () => {
		const { url, seen } = await scripted((_req, _n, res) => unavailable(res));
		const retries: number[] = [];
		const hp = new Hotpath({ url, retries: 3, onRetry: (r) => retries.push(r.attempt) });
		const controller = new AbortController();
		setTimeout(() => controller.abort(), 300);
		const { error, ms } = await rejection(hp.datasets.get("d", { signal: controller.signal }));
		expect(error).toMatchObject({ name: "AbortError" });
		expect(ms).toBeLessThan(1500);
		expect(retries).toEqual([1]);
		await new Promise((r) => setTimeout(r, 2500));
		expect(seen).toHaveLength(1);
	});

	it("is not sent to the server: it is no member of a body", async () => {
		const { url, seen } = await scripted((_req, _n, res) => json(res, 200, { hits: [], next_cursor: null, took_ms: 1 }));
		const hp = new Hotpath({ url });
		await hp.search("d", { q: "x" }, { signal: new AbortController().signal });
		await hp.lookup([{ dataset: "d", keys: ["k"] }], { signal: new AbortController().signal }).catch(() => {});
		expect(seen.map((s) => JSON.parse(s.body))).toEqual([{ q: "x" }, { requests: [{ dataset: "d", keys: ["k"] }] }]);
	});

	it("stops a paging iterator between pages", async () => {
		const { url, seen } = await scripted((_req, n, res) =>
			json(res, 200, { records: [{ key: `k${n}`, value: {}, event_time: "", event_id: "" }], next_cursor: `c${n}` }),
		);
		const hp = new Hotpath({ url });
		const controller = new AbortController();
		const keys: string[] = [];
		const { error } = await rejection(
			(async () => {
				for await (const r of hp.export("d", { signal: controller.signal })) {
					keys.push(r.key);
					if (keys.length === 2) controller.abort();
				}
			})(),
		);
		expect(error).toMatchObject({ name: "AbortError" });
		expect(keys).toEqual(["k0", "k1"]);
		expect(seen).toHaveLength(2);
	});
});
