// `hotpath datasets apply` with several specs, when the connection goes away part-way: the specs
// already applied stay applied, so the CLI must say which were and which were not, not only the error.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hotpath } from "@hotpath/client";
import { afterAll, describe, expect, it } from "vitest";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { json, killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-apply-"));
let proxy: Server | undefined;
afterAll(async () => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
	proxy?.closeAllConnections();
	await new Promise((r) => proxy?.close(r));
});

/** Forwards the first request to the dev server; cuts every later connection without an answer (a network gone). */
async function cutAfterFirst(target: string): Promise<string> {
	let n = 0;
	proxy = createServer((req, res) => {
		if (n++ > 0) return req.socket.destroy();
		const up = httpRequest(new URL(req.url ?? "/", target), { method: req.method, headers: req.headers }, (answer) => {
			res.writeHead(answer.statusCode ?? 502, answer.headers);
			answer.pipe(res);
		});
		req.pipe(up);
	});
	await new Promise<void>((r) => proxy?.listen(0, "127.0.0.1", r));
	const address = proxy.address();
	return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
}

describe("datasets apply, cut off part-way", () => {
	it("reports the spec it applied, the one that failed and the one it never sent (exit 1)", async () => {
		const [a, b, c] = [uniqueName("apply_a"), uniqueName("apply_b"), uniqueName("apply_c")];
		const file = path.join(dir, "specs.yaml");
		writeFileSync(file, [a, b, c].map((name) => `name: ${name}\nkey: id\nfields: {n: int}\n`).join("---\n"));
		const url = await cutAfterFirst(server().url);

		const run = await runCli(["--url", url, "--key", server().adminKey, "datasets", "apply", file, "--json"]);
		expect(run.code).toBe(1);
		const sdk = new Hotpath({ url: server().url, key: server().adminKey });
		expect((await sdk.datasets.get(a)).name).toBe(a);
		const applied = json<{ applied: { name: string; status: string; error?: { status: number } }[] }>(run).applied;
		expect(applied.map((r) => [r.name, r.status])).toEqual([
			[a, "created"],
			[b, "failed"],
			[c, "skipped"],
		]);
		expect(applied[1]?.error?.status).toBe(0);
		expect(run.stderr).toMatch(/Network error/);
		expect(run.stderr).not.toMatch(/^\s+at /m);
	}, 60_000);
});
