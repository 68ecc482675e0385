/**
 * CORS: the SDK runs in browsers, on pages of other origins. A preflight is answered for any path
 * without a key, and every answer (the L0 fast lane's, the app's, problems) lets the page read it.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, getRecord, postEvents, uniqueName, waitForRecord } from "./helpers";

const page = { origin: "https://app.example" };

function expectReadable(res: Response) {
	expect(res.headers.get("access-control-allow-origin")).toBe("*");
	expect(res.headers.get("access-control-expose-headers")).toMatch(/x-hotpath-tier/);
	expect(res.headers.get("access-control-expose-headers")).toMatch(/retry-after/);
}

describe("CORS", () => {
	let ds = "";
	const key = uniqueName("k");
	beforeAll(async () => {
		ds = await createDataset();
		await postEvents([{ dataset: ds, key, op: "upsert", value: { age: 1 } }]);
		await waitForRecord(ds, key);
	});

	it("answers a preflight for any route, without a key, naming the methods and headers the API takes", async () => {
		for (const [path, method] of [
			["/v1/lookup", "POST"],
			[`/v1/datasets/${ds}`, "PUT"],
			["/v1/keys/x", "DELETE"],
		] as const) {
			const res = await call("OPTIONS", path, {
				key: null,
				headers: { ...page, "access-control-request-method": method, "access-control-request-headers": "authorization, content-type, idempotency-key" },
			});
			expect(res.status).toBe(204);
			expect(res.headers.get("access-control-allow-origin")).toBe("*");
			expect(res.headers.get("access-control-allow-methods")).toContain(method);
			// X-Request-Id: a page's own request id, echoed back (README, "The L0 fast lane"); a preflight
			// that did not allow it made every call of a page that sets one fail in the browser.
			for (const h of ["authorization", "content-type", "idempotency-key", "if-none-match", "x-request-id"])
				expect(res.headers.get("access-control-allow-headers")).toContain(h);
		}
	});

	it("lets a page read every answer: the fast lane's, the app's, and problems", async () => {
		await getRecord(ds, key, "", { headers: page });
		const hit = await getRecord(ds, key, "", { headers: page });
		expect(hit.headers.get("x-hotpath-tier")).toBe("l0");
		expectReadable(hit);
		await hit.body?.cancel();
		const lookup = await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: [key] }] }, headers: page });
		expect(lookup.status).toBe(200);
		expectReadable(lookup);
		await lookup.body?.cancel();
		for (const res of [await call("GET", "/v1/datasets", { key: "hp_unknown", headers: page }), await getRecord(ds, "none", "", { headers: page })]) {
			expect(res.status).toBeGreaterThanOrEqual(400);
			expectReadable(res);
			await res.body?.cancel();
		}
	});
});
