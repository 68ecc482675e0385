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
});
