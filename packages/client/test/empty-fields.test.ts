// get(dataset, key, {fields: []}) asks for an empty projection, as `fields: []` does in a lookup
// (value {}). It was sent as `GET ...?fields=`, which the server refuses since empty query-string
// projections became a 400, so the call threw where lookup() with the same fields answered.
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Hotpath } from "../src/index.ts";

let server: Server | undefined;

/** A server that answers as Hotpath does: `fields=` naming no field is a 400; a lookup's `fields: []` projects to {}. */
async function hotpathLike(): Promise<{ url: string; seen: string[] }> {
	const seen: string[] = [];
	server = createServer((req, res) => {
		let body = "";
		req.on("data", (c: Buffer) => (body += c.toString()));
		req.on("end", () => {
			seen.push(`${req.method} ${req.url}`);
			const url = new URL(req.url ?? "/", "http://x");
			if (req.method === "GET" && url.pathname === "/v1/datasets/users/records/u1") {
				const fields = url.searchParams.get("fields");
				if (fields?.split(",").every((f) => f.trim() === "")) {
					res
						.writeHead(400, { "content-type": "application/problem+json" })
						.end(JSON.stringify({ type: "https://hotpath.dev/problems/bad-request", title: "Bad request", status: 400, detail: "fields names no field" }));
					return;
				}
				res
					.writeHead(200, { "content-type": "application/json", "x-hotpath-tier": "d1" })
					.end(JSON.stringify({ dataset: "users", key: "u1", status: "present", value: { n: 1 }, event_time: "2026-01-01T00:00:00.000Z", age_ms: 5 }));
				return;
			}
			if (req.method === "POST" && url.pathname === "/v1/lookup") {
				const { requests } = JSON.parse(body) as { requests: { dataset: string; keys: string[]; fields?: string[] }[] };
				const results = requests.map((r) => ({
					dataset: r.dataset,
					records: r.keys.map((key) => ({ key, status: "present", value: r.fields ? {} : { n: 1 }, event_time: "2026-01-01T00:00:00.000Z", age_ms: 5 })),
				}));
				res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ results }));
				return;
			}
			res.writeHead(404, { "content-type": "application/problem+json" }).end(JSON.stringify({ title: "Not found", status: 404, detail: "no route" }));
		});
	});
	await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
	const address = server.address();
	return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, seen };
}

afterEach(async () => {
	server?.closeAllConnections();
	await new Promise((r) => server?.close(r));
	server = undefined;
});

describe("get() with an empty projection", () => {
	it("answers value {} as lookup() does, instead of sending fields= (a 400)", async () => {
		const { url, seen } = await hotpathLike();
		const hp = new Hotpath({ url, key: "k" });
		const got = await hp.get("users", "u1", { fields: [], maxStaleness: 30 });
		expect(got).toEqual({ dataset: "users", key: "u1", status: "present", value: {}, event_time: "2026-01-01T00:00:00.000Z", age_ms: 5 });
		const [looked] = await hp.lookup([{ dataset: "users", keys: ["u1"], fields: [] }]);
		expect(looked?.records[0]?.value).toEqual(got.value);
		// Without fields, or with some, get() is still a GET of the record.
		expect((await hp.get("users", "u1", { fields: ["n"] })).value).toEqual({ n: 1 });
		expect(seen.filter((s) => s.includes("fields="))).toEqual(["GET /v1/datasets/users/records/u1?fields=n"]);
	});
});
