// Where the CLI connects: a --url or HOTPATH_URL that is not an http(s) URL is bad usage (exit 2), refused before any request.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { devVarsKey, jsonOption } from "../../../cli/context.ts";
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

describe("a target where nothing answers", () => {
	it("is exit 1 with the network error and a hint to start the server or give --url", async () => {
		// Port 1: nothing listens, the connection is refused at once.
		const run = await runCli(["datasets", "list", "--url", "http://127.0.0.1:1", "--key", "k"]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(/Network error/);
		expect(run.stderr).toMatch(/is Hotpath running there\? Start it with `npm run dev`, or point the CLI at it with --url or HOTPATH_URL/);
	}, 60_000);
});

describe("the key from .dev.vars", () => {
	it("is read as wrangler reads the file (dotenv): single, double or no quotes, export, a comment, the last line winning", () => {
		const dir = mkdtempSync(path.join(tmpdir(), "hotpath-devvars-"));
		try {
			for (const [text, key] of [
				['HOTPATH_ADMIN_KEY="hp_a"\n', "hp_a"],
				["HOTPATH_ADMIN_KEY='hp_b'\n", "hp_b"],
				["HOTPATH_ADMIN_KEY=hp_c # the dev key\n", "hp_c"],
				["export HOTPATH_ADMIN_KEY=hp_d\r\n", "hp_d"],
				['HOTPATH_ADMIN_KEY="hp_old"\nOTHER=1\nHOTPATH_ADMIN_KEY="hp_new"\n', "hp_new"],
				["OTHER=1\n", undefined],
			] as [string, string | undefined][]) {
				writeFileSync(path.join(dir, ".dev.vars"), text);
				expect({ text, key: devVarsKey(dir) }).toEqual({ text, key });
			}
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});

describe("JSON files given to options", () => {
	it("may start with a byte-order mark: --filter @FILE and --query FILE read them as JSON", async () => {
		const dir = mkdtempSync(path.join(tmpdir(), "hotpath-bom-"));
		try {
			const file = path.join(dir, "filter.json");
			writeFileSync(file, '\uFEFF{"age": {"gte": 30}}\r\n');
			expect(jsonOption(`@${file}`)).toEqual({ age: { gte: 30 } });
			// Nothing listens on port 9: a query that parsed is sent and fails (exit 1), one that did not is bad usage (exit 2).
			const run = await runCli(["--url", "http://127.0.0.1:9", "--key", "k", "search", "d", "--query", file]);
			expect(run.stderr).not.toMatch(/not JSON/);
			expect(run.code).toBe(1);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	}, 60_000);
});

describe("empty arguments", () => {
	it("are missing arguments: exit 2 naming the argument, before any request", async () => {
		for (const [args, name] of [
			[["get", "", "u1"], "dataset"],
			[["get", "users", ""], "key"],
			[["lookup", "users", "a", ""], "keys"],
			[["export", ""], "dataset"],
			[["rebuild", ""], "dataset"],
			[["keys", "revoke", ""], "id"],
		] as [string[], string][]) {
			// Nothing listens on port 9: a request would fail with a network error (exit 1), not 2.
			const run = await runCli(["--url", "http://127.0.0.1:9", "--key", "k", ...args]);
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toContain(`<${name}> is empty`);
		}
	}, 120_000);
});
