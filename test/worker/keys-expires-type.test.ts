/**
 * POST /v1/keys: an expires_at that is neither text nor a number (true, an object) was refused with
 * zod's bare "Invalid input" at /expires_at; it now says what expires_at must be.
 */
import { describe, expect, it } from "vitest";
import { call, expectProblem } from "./helpers";

describe("an expires_at of the wrong type", () => {
	it.each([true, { at: "2030-01-01T00:00:00Z" }, ["2030-01-01T00:00:00Z"]])("(%j) is a 400 saying what it must be", async (expires_at) => {
		const p = await expectProblem(await call("POST", "/v1/keys", { json: { name: "k", scopes: ["read"], expires_at } }), 400);
		expect(p.errors).toEqual([
			{ pointer: "/expires_at", detail: "expires_at must be RFC 3339 text or epoch milliseconds (or null for a key that does not expire)" },
		]);
	});
});
