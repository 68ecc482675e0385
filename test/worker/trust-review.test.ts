/**
 * Trust review: what a request may learn and how an answer may present itself. A value withheld
 * as stale (if_stale=omit) is withheld everywhere in the answer, search highlights included.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { applyDirect, call, createDataset, expectJson, expectProblem, uniqueName } from "./helpers";
import { importProducts, productSpec, type SearchBody, waitIndexReady } from "./search-oracle";

describe("search hits whose value is withheld as stale (if_stale=omit)", () => {
	let ds = "";
	beforeAll(async () => {
		ds = await createDataset(productSpec({ text: ["title", "tags"], filters: ["category"] }) as never);
		// Written a minute ago: stale to a read with max_staleness of 1 s.
		await importProducts(ds, [{ sku: "secret", title: "quarterly figures attached", tags: ["quarterly"], category: "a" }]);
		await waitIndexReady(ds);
	});

	it("carry no highlights: the marked text would give the withheld value away (REST)", async () => {
		const fresh = await expectJson<SearchBody>(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "quarterly", highlight: true } }), 200);
		expect(fresh.hits[0]?.highlights).toEqual({ title: "<mark>quarterly</mark> figures attached", tags: ["<mark>quarterly</mark>"] });
		const body = { q: "quarterly", highlight: true, max_staleness: 1, if_stale: "omit" };
		const res = await expectJson<SearchBody>(await call("POST", `/v1/datasets/${ds}/search`, { json: body }), 200);
		expect(res.hits).toEqual([expect.objectContaining({ key: "secret", status: "stale", value: null })]);
		expect(res.hits[0]?.highlights).toEqual({});
		// if_stale=serve reports the value marked stale, and its highlights with it.
		const served = await expectJson<SearchBody>(await call("POST", `/v1/datasets/${ds}/search`, { json: { ...body, if_stale: "serve" } }), 200);
		expect(served.hits[0]).toMatchObject({ status: "stale", value: { title: "quarterly figures attached" }, highlights: { title: expect.any(String) } });
	});

	it("carry no highlights in GraphQL either", async () => {
		const query = `{ ${ds}_search(q: "quarterly", highlight: true, max_staleness: 1, if_stale: omit) { hits { key status value { title } highlights } } }`;
		const res = await expectJson<{ data: Record<string, { hits: { key: string; status: string; value: unknown; highlights: unknown }[] }> }>(
			await call("POST", "/graphql", { json: { query } }),
			200,
		);
		expect(res.data[`${ds}_search`]?.hits).toEqual([{ key: "secret", status: "stale", value: null, highlights: {} }]);
	});
});

describe("GET /graphql's query string", () => {
	it("is held to the POST body's 1 MiB: past it a 414 problem before anything is parsed, at it the query runs", async () => {
		const ds = await createDataset();
		const query = `{ ${ds}(keys: ["k"]) { key status } }`;
		// The query padded with encoded spaces to `bytes` of query string, or just under.
		const pad = (bytes: number) => {
			const head = `query=${encodeURIComponent(query)}`;
			return head + "%20".repeat(Math.floor((bytes - head.length) / 3));
		};
		const over = pad(1024 * 1024 + 3);
		expect(over.length).toBeGreaterThan(1024 * 1024);
		const p = await expectProblem(await call("GET", `/graphql?${over}`), 414);
		expect(p.detail).toMatch(/query string is larger than 1 MiB/);
		// Variables past the limit are refused the same way, not parsed as JSON first.
		await expectProblem(await call("GET", `/graphql?query=${encodeURIComponent(query)}&variables=${"%5B".repeat(400_000)}`), 414);
		const under = pad(1024 * 1024);
		expect(under.length).toBeGreaterThan(1024 * 1024 - 3);
		const ok = await expectJson<{ data: Record<string, unknown> }>(await call("GET", `/graphql?${under}`), 200);
		expect(ok.data[ds]).toEqual([{ key: "k", status: "not_found" }]);
	});
});

describe("a query option given twice", () => {
	it("is a 400 naming it, not a read that quietly used one of the two (records, history, pages, dead letters, GraphQL)", async () => {
		const ds = await createDataset();
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() - 30_000 }]);
		// Once each, the options work: the value is 30 s old, stale to max_staleness=10.
		const once = await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/records/k?max_staleness=10`), 200);
		expect(once.status).toBe("stale");
		const cases: [string, string][] = [
			[`/v1/datasets/${ds}/records/k?max_staleness=3600&max_staleness=10`, "max_staleness"],
			// The same name, percent-encoded the second time (the router decodes names).
			[`/v1/datasets/${ds}/records/k?max_staleness=3600&max%5Fstaleness=10`, "max_staleness"],
			[`/v1/datasets/${ds}/records/k?if_stale=serve&if_stale=omit`, "if_stale"],
			[`/v1/datasets/${ds}/records/k?fields=age&fields=name`, "fields"],
			[`/v1/datasets/${ds}/records/k/history?limit=1&since=0&limit=2`, "limit"],
			[`/v1/datasets/${ds}/records?include_deleted=false&include_deleted=true`, "include_deleted"],
			[`/v1/dead-letters?dataset=${ds}&dataset=other`, "dataset"],
			[`/graphql?query=${encodeURIComponent(`{ ${ds}(keys: ["k"]) { key } }`)}&query=${encodeURIComponent("{ _datasets }")}`, "query"],
		];
		for (const [path, name] of cases) {
			const p = await expectProblem(await call("GET", path), 400);
			expect(p.detail, path).toContain(`"${name}" is given more than once`);
			expect(p.errors).toEqual([{ pointer: name, detail: "given more than once" }]);
		}
		const purge = await expectProblem(await call("DELETE", "/v1/dead-letters?replayed=true&replayed=false"), 400);
		expect(purge.detail).toContain('"replayed" is given more than once');
		// Distinct options, and empty parts between them, are as before.
		expect((await call("GET", `/v1/datasets/${ds}/records/k?fields=age&&max_staleness=3600&`)).status).toBe(200);
	});
});

describe("Server-Timing", () => {
	it("has one entry per tier touched, even when an operation reads a tier twice (two sets of freshness options)", async () => {
		const ds = await createDataset();
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() }]);
		// Two groups: one read as the dataset's ttl allows, one held to D1 (max_staleness 0). Both start at L0.
		const query = `{ a: ${ds}(keys: ["k"]) { key } b: ${ds}(keys: ["k"], max_staleness: 0) { key } }`;
		const res = await call("POST", "/graphql", { json: { query } });
		expect(res.status).toBe(200);
		const names = (res.headers.get("server-timing") ?? "").split(", ").map((e) => e.split(";")[0]);
		expect(names).toContain("l0");
		expect(names).toContain("d1");
		expect(names).toEqual([...new Set(names)]);
	});
});

describe("max_staleness in a query string", () => {
	it("is a decimal number of seconds: hex, binary, blank or padded text is a 400 naming it, not a bound Number() guessed", async () => {
		const ds = await createDataset();
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() - 30_000 }]);
		// "0x10" read as 16 s and " " as 0 s (every read held to D1).
		for (const v of ["0x10", "%20", "0b1", "0o7", "%205", "5%20", "+5", "1_0", "."]) {
			const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?max_staleness=${v}`), 400);
			expect(p.errors, v).toEqual([{ pointer: "max_staleness", detail: "expected a finite number of seconds >= 0" }]);
		}
		// A well-formed number past a double's range is said to be infinite, not negative.
		const huge = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?max_staleness=1e400`), 400);
		expect(huge.detail).toBe("max_staleness is infinite (no bound is leaving it out)");
		// What JSON and String(number) write is taken: the value is 30 s old.
		for (const [v, status] of [
			["60", "present"],
			["10", "stale"],
			["0.5", "stale"],
			[".5", "stale"],
			["10.", "stale"],
			["1e2", "present"],
			["1E-7", "stale"],
		]) {
			const body = await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/records/k?max_staleness=${v}`), 200);
			expect(body.status, v).toBe(status);
		}
	});
});

describe("every route the OpenAPI document lists with a key", () => {
	it("refuses an expired key (401), a key past its rate limit (429 with Retry-After), and a key limited to other datasets (403 naming the dataset)", async () => {
		const doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as { paths: Record<string, Record<string, { security?: unknown[] }>> };
		const mine = await createDataset();
		const theirs = await createDataset();
		const expiring = await expectJson<{ key: string }>(
			await call("POST", "/v1/keys", { json: { name: uniqueName("k"), scopes: ["admin"], expires_at: Date.now() + 1500 } }),
			201,
		);
		const budget = await expectJson<{ key: string }>(
			await call("POST", "/v1/keys", { json: { name: uniqueName("k"), scopes: ["admin"], rate_limit: { requests: 1, period_seconds: 3600 } } }),
			201,
		);
		const limited = await expectJson<{ key: string }>(
			await call("POST", "/v1/keys", { json: { name: uniqueName("k"), scopes: ["admin"], datasets: [mine] } }),
			201,
		);
		await call("GET", "/v1/datasets", { key: budget.key }); // its one request
		await new Promise((r) => setTimeout(r, 1600));
		const routes: [string, string][] = [];
		for (const [path, ops] of Object.entries(doc.paths))
			for (const [method, op] of Object.entries(ops)) if (op.security?.length) routes.push([method.toUpperCase(), path]);
		expect(routes.length).toBeGreaterThan(25);
		const failures: string[] = [];
		for (const [method, path] of routes) {
			const url = path.replace("{name}", theirs).replace("{key}", "k").replace("{id}", "1");
			const json = method === "PUT" ? { key: "id", fields: { a: "int" } } : method === "POST" ? {} : undefined;
			const expired = await call(method, url, { key: expiring.key, json });
			if (expired.status !== 401 || !(await expired.text()).includes("expired")) failures.push(`${method} ${path}: expired key got ${expired.status}`);
			const spent = await call(method, url, { key: budget.key, json });
			if (spent.status !== 429 || !spent.headers.get("retry-after") || !spent.headers.get("content-type")?.startsWith("application/problem+json"))
				failures.push(`${method} ${path}: spent key got ${spent.status} retry-after ${spent.headers.get("retry-after")}`);
			await spent.text();
			if (path.includes("{name}")) {
				const other = await call(method, url, { key: limited.key, json });
				const text = await other.text();
				if (other.status !== 403 || !text.includes(theirs))
					failures.push(`${method} ${path}: key limited to another dataset got ${other.status}: ${text.slice(0, 200)}`);
			}
		}
		expect(failures).toEqual([]);
	});
});

describe("a record answer a browser may reuse (Cache-Control: private, max-age)", () => {
	it("varies on Authorization, from the app and the L0 fast lane alike, so another key's request is not answered from it", async () => {
		const ds = await createDataset();
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() }]);
		const first = await call("GET", `/v1/datasets/${ds}/records/k`);
		const second = await call("GET", `/v1/datasets/${ds}/records/k`);
		for (const res of [first, second]) {
			expect(res.status).toBe(200);
			expect(res.headers.get("cache-control")).toMatch(/^private, max-age=\d+$/);
			expect(res.headers.get("vary")).toMatch(/\bAuthorization\b/i);
		}
		expect(second.headers.get("x-hotpath-tier")).toBe("l0");
		const notModified = await call("GET", `/v1/datasets/${ds}/records/k`, { headers: { "if-none-match": first.headers.get("etag") as string } });
		expect(notModified.status).toBe(304);
		expect(notModified.headers.get("vary")).toMatch(/\bAuthorization\b/i);
	});
});

describe("body limits on a chunked body (no Content-Length)", () => {
	it("are a 413 problem on every route that takes a body, as with a Content-Length", async () => {
		const ds = await createDataset();
		const shipped = await createDataset({ key: "user_id", fields: { age: "int" }, ingest: { key: "/u" } } as never);
		const routes: [string, string, number][] = [
			["POST", "/v1/events", 5 * 1024 * 1024],
			["POST", "/v1/lookup", 1024 * 1024],
			["PUT", `/v1/datasets/${uniqueName()}`, 256 * 1024],
			["POST", "/v1/keys", 16 * 1024],
			["POST", `/v1/datasets/${ds}/search`, 256 * 1024],
			["POST", `/v1/datasets/${ds}/import`, 5 * 1024 * 1024],
			["POST", `/v1/datasets/${shipped}/ingest`, 5 * 1024 * 1024],
			["POST", "/graphql", 1024 * 1024],
		];
		const failures: string[] = [];
		for (const [method, path, limit] of routes) {
			// Invalid JSON past the limit: a 413, not a 400 about the JSON, shows the size was checked first.
			const chunk = new TextEncoder().encode("[".repeat(64 * 1024));
			let sent = 0;
			const body = new ReadableStream<Uint8Array>({
				pull(c) {
					if (sent > limit) c.close();
					else {
						c.enqueue(chunk);
						sent += chunk.length;
					}
				},
			});
			const res = await call(method, path, { body, headers: { "content-type": "application/json" } });
			const text = await res.text();
			if (res.status !== 413 || !res.headers.get("content-type")?.startsWith("application/problem+json") || !text.includes("larger than"))
				failures.push(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
		}
		expect(failures).toEqual([]);
	});
});

describe("a query parameter the route does not take", () => {
	it("is a 400 naming it and the route's parameters, not an option quietly ignored", async () => {
		const ds = await createDataset();
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() - 30_000 }]);
		const cases: [string, string, string][] = [
			// Misspelt: the 30 s old value would read "present" (to the dataset's ttl), not "stale" to 1 s.
			["GET", `/v1/datasets/${ds}/records/k?max_stalness=1`, "max_stalness"],
			["GET", `/v1/datasets/${ds}/records/k/history?limt=1`, "limt"],
			["GET", `/v1/datasets/${ds}/records?include_deleted=true&cursr=x`, "cursr"],
			["GET", "/v1/keys?include_revoke=true", "include_revoke"],
			["GET", `/v1/dead-letters?datset=${ds}`, "datset"],
			// Misspelt: every dataset's dead letters would be purged, or replayed, not only this one's.
			["DELETE", `/v1/dead-letters?datset=${ds}`, "datset"],
			["POST", `/v1/dead-letters/replay?datset=${ds}`, "datset"],
			// Misspelt: the copies would be refilled, not dropped.
			["POST", `/v1/datasets/${ds}/rebuild?mod=drop`, "mod"],
		];
		for (const [method, path, name] of cases) {
			const p = await expectProblem(await call(method, path), 400);
			expect(p.detail, path).toContain(`unknown query parameter(s) "${name}"`);
			expect(p.errors?.[0]?.pointer).toBe(name);
		}
		const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?max_stalness=1`), 400);
		expect(p.detail).toContain("this route takes fields, max_staleness, if_stale, as_of");
		// Auth comes first: no key is still a 401.
		await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?max_stalness=1`, { key: null }), 401);
		// The parameters a route takes are as before; GraphQL's GET takes others (extensions) as GraphQL-over-HTTP allows.
		expect((await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/records/k?max_staleness=1&fields=age`), 200)).status).toBe("stale");
		const gql = `/graphql?query=${encodeURIComponent(`{ ${ds}(keys: ["k"]) { key } }`)}&extensions=${encodeURIComponent("{}")}`;
		expect((await call("GET", gql)).status).toBe(200);
	});
});

describe("a projection in a query string that names no field", () => {
	it("is a 400 naming it, not the whole value (fields=) or an empty one (fields=,); JSON's fields: [] stays an empty projection", async () => {
		const ds = await createDataset();
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { age: 1, name: "a" }, time: Date.now() }]);
		for (const q of ["fields=", "fields=,", "fields=%20", "fields=%20,%20"]) {
			const p = await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k?${q}`), 400);
			expect(p.detail).toMatch(/fields names no field/);
		}
		// One named field still projects.
		const one = await expectJson<{ value: unknown }>(await call("GET", `/v1/datasets/${ds}/records/k?fields=name`), 200);
		expect(one.value).toEqual({ name: "a" });
		// A JSON list can say "none" unambiguously.
		const none = await expectJson<{ results: { records: { value: unknown }[] }[] }>(
			await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"], fields: [] }] } }),
			200,
		);
		expect(none.results[0]?.records[0]?.value).toEqual({});
	});
});

describe("GraphQL's operationName left empty", () => {
	it('reads as absent on GET and POST (a form sends operationName=), not as an operation named ""', async () => {
		const ds = await createDataset();
		const query = `{ ${ds}(keys: ["k"]) { key status } }`;
		const viaGet = await expectJson<{ data: Record<string, unknown> }>(
			await call("GET", `/graphql?query=${encodeURIComponent(query)}&operationName=&variables=`),
			200,
		);
		expect(viaGet.data[ds]).toEqual([{ key: "k", status: "not_found" }]);
		const viaPost = await expectJson<{ data: Record<string, unknown> }>(await call("POST", "/graphql", { json: { query, operationName: "" } }), 200);
		expect(viaPost.data[ds]).toEqual([{ key: "k", status: "not_found" }]);
	});
});
