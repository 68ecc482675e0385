// `--key ""` (a script's `--key "$UNSET"`) counted as no --key: the CLI fell back to HOTPATH_KEY or
// the admin key in .dev.vars, and sent that to the --url it was given. An empty --key or --url is
// bad usage (exit 2) before any request, as an empty argument is; an empty variable still counts as unset.
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

let server: Server | undefined;

afterEach(async () => {
	const s = server;
	server = undefined;
	if (!s) return;
	s.closeAllConnections();
	await new Promise((r) => s.close(r));
});

/** A stand-in answering GET /v1/datasets, keeping every request's headers. */
async function standIn(): Promise<{ url: string; seen: IncomingHttpHeaders[] }> {
	const seen: IncomingHttpHeaders[] = [];
	server = createServer((req, res) => {
		seen.push(req.headers);
		res.writeHead(200, { "content-type": "application/json" }).end('{"datasets":[]}');
	});
	await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
	const address = server.address();
	return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, seen };
}

describe("an empty --key or --url", () => {
	it('--key "" is exit 2, and no key (the .dev.vars admin key) is sent anywhere', async () => {
		const { url, seen } = await standIn();
		for (const args of [
			["--url", url, "--key", "", "datasets", "list"],
			["datasets", "list", "--url", url, "--key="],
		]) {
			const run = await runCli(args, { env: { HOTPATH_KEY: "hp_from_env" } });
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toMatch(/--key is empty/);
		}
		expect(seen).toEqual([]);
	}, 60_000);

	it('bridge too: --key "" or --url "" is exit 2, and no key (HOTPATH_KEY, .dev.vars) is sent anywhere', async () => {
		const { url, seen } = await standIn();
		const config = path.join(mkdtempSync(path.join(tmpdir(), "hotpath-empty-target-")), "bridge.json");
		// A config that would start (the stand-in answers the dataset check) and then wait for Redis entries.
		writeFileSync(
			config,
			JSON.stringify({
				sources: [{ type: "redis-streams", dataset: "items", map: { key: "/id" }, url: "redis://127.0.0.1:1", stream: "s", group: "g", consumer: "c" }],
			}),
		);
		for (const args of [
			["--url", url, "--key", "", "bridge", "--config", config],
			["--url", "", "--key", "k", "bridge", "--config", config],
		]) {
			const run = await runCli(args, { env: { HOTPATH_KEY: "hp_from_env", HOTPATH_URL: url } });
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toMatch(/--(key|url) is empty/);
		}
		expect(seen).toEqual([]);
	}, 60_000);

	it('--url "" is exit 2, not the default URL', async () => {
		const run = await runCli(["--url", "", "--key", "k", "datasets", "list"]);
		expect(run.code).toBe(2);
		expect(run.stderr).toMatch(/--url is empty/);
	}, 60_000);

	it("an empty HOTPATH_KEY still counts as unset, and a --key is sent as given", async () => {
		const { url, seen } = await standIn();
		const run = await runCli(["--url", url, "--key", "hp_given", "datasets", "list", "--json"], { env: { HOTPATH_KEY: "" } });
		expect(run.code).toBe(0);
		expect(seen.map((h) => h.authorization)).toEqual(["Bearer hp_given"]);
	}, 60_000);
});
