// Keys "." and ".." cannot travel in a URL path (URL parsing resolves them, "%2E" too): get() reads
// them through POST /v1/lookup, and history() refuses them instead of reading another route.
import { describe, expect, it } from "vitest";
import { CLIENT_PROBLEM, Hotpath, HotpathError } from "../src/index.ts";
import { type Seen, scripted } from "./scripted-server.ts";

/** A server that answers every lookup with the requested keys found, and records every request. */
function lookupServer(): Promise<{ url: string; seen: Seen[] }> {
	return scripted((req, _n, res) => {
		if (req.method === "POST" && req.url === "/v1/lookup") {
			const { requests } = JSON.parse(req.body) as { requests: { dataset: string; keys: string[] }[] };
			const results = requests.map((r) => ({
				dataset: r.dataset,
				records: r.keys.map((key) => ({ key, status: "present", value: { n: 1 }, event_time: "2026-01-01T00:00:00.000Z", age_ms: 5 })),
			}));
			res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ results }));
			return;
		}
		res
			.writeHead(404, { "content-type": "application/problem+json" })
			.end(
				JSON.stringify({ type: "https://hotpath.dev/problems/not-found", title: "Not found", status: 404, detail: `no route for ${req.method} ${req.url}` }),
			);
	});
}

describe("keys that are dot segments", () => {
	it('get() reads "." and ".." through a lookup, with the read options, instead of a GET of another path', async () => {
		const { url, seen } = await lookupServer();
		const hp = new Hotpath({ url, key: "k" });
		for (const key of [".", ".."]) {
			const got = await hp.get("users", key, { fields: ["n"], maxStaleness: 30, asOf: 1_767_225_600_000 });
			expect(got).toEqual({ dataset: "users", key, status: "present", value: { n: 1 }, event_time: "2026-01-01T00:00:00.000Z", age_ms: 5 });
		}
		expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(["POST /v1/lookup", "POST /v1/lookup"]);
		expect(JSON.parse(seen[1]?.body ?? "{}")).toEqual({
			requests: [{ dataset: "users", keys: [".."], fields: ["n"] }],
			max_staleness: 30,
			as_of: 1_767_225_600_000,
		});
		// Any other key still takes the path.
		await expect(hp.get("users", "...")).rejects.toThrow(/no route for GET \/v1\/datasets\/users\/records\/\.\.\./);
	});

	it('history() refuses "." and ".." without a request, naming why', async () => {
		const { url, seen } = await lookupServer();
		const hp = new Hotpath({ url, key: "k" });
		for (const key of [".", ".."]) {
			const e = await hp.history("users", key).catch((x: unknown) => x);
			expect(e).toBeInstanceOf(HotpathError);
			expect((e as HotpathError).type).toBe(CLIENT_PROBLEM.unaddressableKey);
			expect((e as HotpathError).detail).toMatch(/relative path/);
		}
		expect(seen).toEqual([]);
	});
});
