// More keys than one lookup reads (1,000, as the verb's help says) is bad usage: exit 2 before any
// request, naming the limit. It was sent and refused with a 413 (exit 1, a "failed operation").
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

// Nothing listens there: a verb that sent a request would fail with a network error (exit 1), not 2.
const nowhere = ["--url", "http://127.0.0.1:9", "--key", "k"];

describe("lookup key count", () => {
	it("exits 2 for 1,001 keys, naming the limit, and writes nothing on stdout", async () => {
		const keys = Array.from({ length: 1001 }, (_, i) => `k${i}`);
		const run = await runCli([...nowhere, "--json", "lookup", "users", ...keys]);
		expect(run.code).toBe(2);
		expect(run.stderr).toContain("1001 keys");
		expect(run.stderr).toContain("at most 1000");
		expect(run.stdout).toBe("");
	});

	it("sends 1,000 keys (the limit itself is not refused locally)", async () => {
		const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
		const run = await runCli([...nowhere, "lookup", "users", ...keys]);
		// The request was made: nothing answers there, so it fails as a network error (exit 1).
		expect(run.code).toBe(1);
		expect(run.stderr).toContain("Network error");
	}, 60_000);
});
