// get() answers a record's 404 as not_found and throws any other 404. A 404 that is not a problem
// document (a base URL that is not a Hotpath, a proxy) was thrown as `new HotpathError(body)`: an
// empty body made that a TypeError ("reading 'detail'"), and JSON like {"error": ...} a HotpathError
// whose status and message were undefined. It is now the same error any route's 404 gives.
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Hotpath, HotpathError } from "../src/index.ts";

let server: Server | undefined;

afterEach(async () => {
	server?.closeAllConnections();
	await new Promise((r) => server?.close(r));
	server = undefined;
});

async function answering(contentType: string | undefined, body: string): Promise<Hotpath> {
	server = createServer((_req, res) => res.writeHead(404, contentType ? { "content-type": contentType } : {}).end(body));
	await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
	const address = server.address();
	return new Hotpath({ url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, retries: 0 });
}

async function thrown(p: Promise<unknown>): Promise<unknown> {
	try {
		await p;
	} catch (e) {
		return e;
	}
	throw new Error("expected a throw");
}

describe("get: a 404 that is not Hotpath's", () => {
	it("an empty body is a HotpathError 404, not a TypeError", async () => {
		const e = await thrown((await answering(undefined, "")).get("users", "u1"));
		expect(e).toBeInstanceOf(HotpathError);
		expect((e as HotpathError).status).toBe(404);
		expect((e as HotpathError).message).toContain("404");
	});

	it("JSON that is not a problem document is a HotpathError 404 quoting it", async () => {
		const e = await thrown((await answering("application/json", '{"error":"not here"}')).get("users", "u1"));
		expect(e).toBeInstanceOf(HotpathError);
		expect((e as HotpathError).status).toBe(404);
		expect((e as HotpathError).detail).toContain("not here");
	});

	it("an HTML page is a HotpathError 404 quoting it, as other routes give", async () => {
		const hp = await answering("text/html", "<h1>Not Found</h1>");
		const e = await thrown(hp.get("users", "u1"));
		expect(e).toBeInstanceOf(HotpathError);
		expect((e as HotpathError).status).toBe(404);
		expect((e as HotpathError).detail).toContain("Not Found");
		expect(((await thrown(hp.datasets.get("users"))) as HotpathError).detail).toBe((e as HotpathError).detail);
	});

	it("a record miss is still not_found, and a problem 404 still throws it as it is", async () => {
		server = createServer((req, res) => {
			const problem = req.url?.includes("/records/")
				? { type: "https://hotpath.dev/problems/record-not-found", title: "Not found", status: 404, detail: 'no record "u1" in users' }
				: { type: "https://hotpath.dev/problems/not-found", title: "Not found", status: 404, detail: 'dataset "nope" does not exist' };
			res.writeHead(404, { "content-type": "application/problem+json" }).end(JSON.stringify(problem));
		});
		await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
		const address = server.address();
		const hp = new Hotpath({ url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` });
		expect((await hp.get("users", "u1")).status).toBe("not_found");
	});
});
