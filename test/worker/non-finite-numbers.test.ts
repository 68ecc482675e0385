/**
 * JSON.parse reads a number past a double's range (1e400) as Infinity. A body member validated by
 * zod then got "Invalid input: expected number, received Infinity", naming a value the client
 * never sent. The problem now says the number is too large, at its pointer, and nothing is applied.
 */
import { describe, expect, it } from "vitest";
import { call, expectJson, expectProblem, uniqueName } from "./helpers";

const raw = (method: string, path: string, body: string) => call(method, path, { body, headers: { "content-type": "application/json" } });

describe("a number too large for a double in a validated body", () => {
	it("POST /v1/keys: named at its pointer as too large, and no key is made", async () => {
		const name = uniqueName("k");
		const p = await expectProblem(
			await raw("POST", "/v1/keys", `{"name":"${name}","scopes":["read"],"rate_limit":{"requests":1e400,"period_seconds":60}}`),
			400,
		);
		expect(p.errors).toEqual([{ pointer: "/rate_limit/requests", detail: expect.stringMatching(/^a number too large for a double/) }]);
		expect(p.detail).not.toMatch(/Infinity$/);
		const listed = await expectJson<{ keys: { name: string }[] }>(await call("GET", "/v1/keys"), 200);
		expect(listed.keys.filter((k) => k.name === name)).toEqual([]);
	});

	it("POST /v1/lookup: a negative one too", async () => {
		const p = await expectProblem(await raw("POST", "/v1/lookup", `{"requests":[{"dataset":"x","keys":["a"]}],"max_staleness":-1e400}`), 400);
		expect(p.errors).toEqual([{ pointer: "/max_staleness", detail: expect.stringMatching(/^a number too large for a double/) }]);
	});
});
