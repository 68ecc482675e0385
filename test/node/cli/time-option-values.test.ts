// Time options (`--as-of`, `--since`, `--until`) the server would refuse are bad usage: exit 2
// before any request, naming the option, as other option values are (CLI.md). A date alone, a
// time without an offset, an impossible date or a time past what a Date holds were sent, and
// refused with a 400 (exit 1).
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

// Nothing listens there: a verb that sent a request would fail with a network error (exit 1), not 2.
const nowhere = ["--url", "http://127.0.0.1:9", "--key", "k"];

describe("time option values", () => {
	it("exits 2 for a time that is neither RFC 3339 nor epoch milliseconds, naming the option", async () => {
		const uses: [string[], string][] = [
			[["get", "users", "u1"], "--as-of"],
			[["lookup", "users", "u1"], "--as-of"],
			[["history", "users", "u1"], "--since"],
			[["history", "users", "u1"], "--until"],
		];
		for (const [verb, option] of uses) {
			for (const value of ["2026-01-01", "Jan 1 2026", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z", "-5", "99999999999999999999"]) {
				const run = await runCli([...nowhere, ...verb, option, value]);
				expect({ verb: verb[0], option, value, code: run.code }).toEqual({ verb: verb[0], option, value, code: 2 });
				expect(run.stderr).toContain(`option '${option}`);
				expect(run.stderr).not.toMatch(/^\s+at /m);
			}
		}
	}, 180_000);

	it("takes RFC 3339 with an offset or fractions, and epoch milliseconds (the request is made: exit 1 only for the network)", async () => {
		for (const value of ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.123+01:00", "1795799259175"]) {
			const run = await runCli([...nowhere, "get", "users", "u1", "--as-of", value]);
			expect({ value, code: run.code }).toEqual({ value, code: 1 });
			expect(run.stderr).not.toContain("option '--as-of");
		}
	}, 60_000);
});
