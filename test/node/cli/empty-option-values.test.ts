// An empty option value (a script's --cursor "$NEXT" with NEXT unset) is bad usage: exit 2 before any
// request, naming the option, as an empty argument or --fields "" is (CLI.md). These were sent and
// came back as a 400 (exit 1), or for search --like "" a 404 about a record "".
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

// Nothing listens there: a verb that sent a request would fail with a network error (exit 1), not 2.
const nowhere = ["--url", "http://127.0.0.1:9", "--key", "k"];

describe("empty option values", () => {
	it("exits 2 naming the option", async () => {
		const cases: [string[], string][] = [
			[["search", "users", "--cursor", ""], "--cursor"],
			[["search", "users", "--like", ""], "--like"],
			[["search", "users", "--text", ""], "--text"],
			[["history", "users", "u1", "--cursor", ""], "--cursor"],
			[["dlq", "list", "--dataset", ""], "--dataset"],
			[["dlq", "replay", "--all", "--dataset", ""], "--dataset"],
			[["dlq", "purge", "--all", "--dataset", ""], "--dataset"],
		];
		for (const [args, option] of cases) {
			const run = await runCli([...nowhere, ...args]);
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toContain(`${option} <`);
			expect(run.stderr).toContain("not an empty one");
			expect(run.stderr).not.toMatch(/^\s+at /m);
		}
	}, 120_000);
});
