// `hotpath keys create` option values it cannot send are bad usage: exit 2 before any request, never a stack.
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

// Nothing listens there: a create that sent a request would fail with a network error (exit 1), not 2.
const nowhere = ["--url", "http://127.0.0.1:9", "--key", "k"];

describe("keys create", () => {
	it("exits 2 for an --expires-at past the last date there is, or an empty --datasets, naming the option", async () => {
		for (const [option, value] of [
			["--expires-at", "99999999999999999"],
			["--expires-at", "+275760-09-14T00:00:00Z"],
			["--datasets", ""],
			["--datasets", " , "],
		]) {
			const run = await runCli([...nowhere, "keys", "create", "k", "--scopes", "read", option as string, value as string]);
			expect({ option, value, code: run.code }).toEqual({ option, value, code: 2 });
			expect(run.stderr).toContain(`option '${option}`);
			expect(run.stderr).not.toMatch(/^\s+at /m);
		}
	}, 60_000);

	it("exits 2 for an --expires-at the server would not take, where Date.parse guessed a date (2030-02-30 became March 2nd)", async () => {
		// The CLI sent what Date.parse made of it as RFC 3339, so the key was made with an expiry nobody gave.
		for (const value of ["2030-02-30T00:00:00Z", "2030-01-01T00:00:00", "2030-01-01", "Jan 1 2030", "-5"]) {
			const run = await runCli([...nowhere, "keys", "create", "k", "--scopes", "read", "--expires-at", value]);
			expect({ value, code: run.code }).toEqual({ value, code: 2 });
			expect(run.stderr).toContain("option '--expires-at");
		}
		// RFC 3339 with an offset and epoch ms are sent (exit 1 only for the network).
		for (const value of ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00.5+01:00", "1893456000000"]) {
			const run = await runCli([...nowhere, "keys", "create", "k", "--scopes", "read", "--expires-at", value]);
			expect({ value, code: run.code }).toEqual({ value, code: 1 });
			expect(run.stderr).not.toContain("option '--expires-at");
		}
	}, 90_000);

	it("exits 2 for a --rate-limit past the server's bounds (1,000,000 requests, a period of 86,400 s), before any request", async () => {
		for (const value of ["1000001/60", "5/86401", "99999999999999999999/60"]) {
			const run = await runCli([...nowhere, "keys", "create", "k", "--scopes", "read", "--rate-limit", value]);
			expect({ value, code: run.code }).toEqual({ value, code: 2 });
			expect(run.stderr).toContain("option '--rate-limit");
		}
		const within = await runCli([...nowhere, "keys", "create", "k", "--scopes", "read", "--rate-limit", "1000000/86400"]);
		expect(within.code).toBe(1);
		expect(within.stderr).not.toContain("option '--rate-limit");
	}, 60_000);
});
