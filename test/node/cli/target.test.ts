// Where the CLI connects: a --url or HOTPATH_URL that is not an http(s) URL is bad usage (exit 2), refused before any request.
import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

describe("the target URL", () => {
	it("exits 2 for a --url or HOTPATH_URL that is not an http(s) URL, saying which", async () => {
		for (const [args, env] of [
			[["--url", "notaurl", "datasets", "list"], {}],
			[["get", "d", "k", "--url", "ftp://127.0.0.1/"], {}],
			[["datasets", "list", "--json"], { HOTPATH_URL: "127.0.0.1:8787" }],
		] as [string[], NodeJS.ProcessEnv][]) {
			const run = await runCli(args, { env });
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toMatch(/--url \(or HOTPATH_URL\) must be an http:\/\/ or https:\/\/ URL/);
			expect(run.stderr).not.toMatch(/^\s+at /m);
		}
	}, 60_000);
});
