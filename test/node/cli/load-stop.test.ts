// `hotpath load` stopped part-way, against a stand-in for the import route: a signal's exit code is
// 128 + its number (130 for Ctrl-C, 143 for SIGTERM, which it was not), and a load that fails
// part-way with --json prints what it did before the error (it printed only the error).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { eventually } from "../dev-server.ts";
import { exited, json, killLeftovers, runCli, spawnCli } from "./run-cli.ts";

const dir = mkdtempSync(path.join(tmpdir(), "hotpath-load-stop-"));
let server: Server | undefined;
afterEach(async () => {
	killLeftovers();
	const s = server;
	server = undefined;
	if (!s) return;
	s.closeAllConnections();
	await new Promise((r) => s.close(r));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SPEC = { name: "items", key: "id", ttl_seconds: 3600, history_days: 7, fields: { n: { type: "int" } } };

/**
 * The two routes `load` uses: the spec, and an import that hands each chunk to `answer` (its index
 * in arrival order and its row count), which answers it (or never does).
 */
async function standIn(answer: (chunk: number, rows: number, res: ServerResponse) => void): Promise<{ url: string; chunks: () => number }> {
	let chunks = 0;
	server = createServer((req: IncomingMessage, res) => {
		let body = "";
		req.on("data", (d: Buffer) => (body += d.toString()));
		req.on("end", () => {
			if (req.method === "GET" && req.url === "/v1/datasets/items") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(SPEC));
			if (req.method === "POST" && req.url === "/v1/datasets/items/import") return answer(chunks++, body.split("\n").filter(Boolean).length, res);
			res.writeHead(404).end();
		});
	});
	await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
	const address = server.address();
	return { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, chunks: () => chunks };
}

const imported = (rows: number, res: ServerResponse) =>
	res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ imported: rows, unchanged: 0, rejected: [] }));

function rowsFile(name: string, rows: number): string {
	const file = path.join(dir, name);
	writeFileSync(file, `${Array.from({ length: rows }, (_, i) => JSON.stringify({ id: `k${i + 1}`, n: i })).join("\n")}\n`);
	return file;
}

describe("hotpath load stopped by a signal", () => {
	it("exits 143 on SIGTERM and 130 on SIGINT, after the chunk in flight, keeping the checkpoint", async () => {
		for (const [signal, code] of [
			["SIGTERM", 143],
			["SIGINT", 130],
		] as const) {
			// The second chunk is answered only a while after the signal: the load must wait for it, then stop.
			const { url, chunks } = await standIn((chunk, rows, res) => (chunk === 0 ? imported(rows, res) : setTimeout(() => imported(rows, res), 500)));
			const file = rowsFile(`signal-${signal}.ndjson`, 50);
			const child = spawnCli(["--url", url, "--key", "k", "load", "items", file, "--chunk-rows", "10", "--concurrency", "1", "--no-progress"]);
			await eventually(async () => (chunks() === 2 ? true : undefined), 15_000, 10);
			child.kill(signal);
			const run = await exited(child);
			expect({ signal, code: run.code }).toEqual({ signal, code });
			expect(run.stdout).toMatch(/^stopped after 20 rows/);
			expect(run.stderr).toMatch(/interrupted: run the same command with --resume/);
			expect(existsSync(`${file}.hotpath-load.json`)).toBe(true);
			server?.closeAllConnections();
			await new Promise((r) => server?.close(r));
		}
	}, 30_000);

	it("a second signal quits at once with that signal's code", async () => {
		// The second chunk is never answered: only the second signal ends the load.
		const { url, chunks } = await standIn((chunk, rows, res) => (chunk === 0 ? imported(rows, res) : undefined));
		const file = rowsFile("twice.ndjson", 50);
		const child = spawnCli(["--url", url, "--key", "k", "load", "items", file, "--chunk-rows", "10", "--concurrency", "1", "--no-progress"]);
		await eventually(async () => (chunks() === 2 ? true : undefined), 15_000, 10);
		child.kill("SIGTERM");
		await eventually(async () => (child.output.stderr.includes("stopping:") ? true : undefined));
		child.kill("SIGTERM");
		expect((await exited(child)).code).toBe(143);
	}, 30_000);
});

describe("hotpath load failing part-way", () => {
	/** Chunks 0 and 1 imported; chunk 2 refused as if the dataset had gone meanwhile. */
	const goneAtThird = (chunk: number, rows: number, res: ServerResponse) =>
		chunk < 2
			? imported(rows, res)
			: res
					.writeHead(404, { "content-type": "application/problem+json" })
					.end(JSON.stringify({ type: "about:blank", title: "Not found", status: 404, detail: 'dataset "items" does not exist' }));

	it("with --json prints the totals so far, where to resume and the error, and exits 1", async () => {
		const { url } = await standIn(goneAtThird);
		const file = rowsFile("gone.ndjson", 50);
		const run = await runCli(["--url", url, "--key", "k", "load", "items", file, "--chunk-rows", "10", "--concurrency", "1", "--json", "--no-progress"]);
		expect(run.code).toBe(1);
		expect(json(run)).toMatchObject({
			dataset: "items",
			rows: 20,
			imported: 20,
			unchanged: 0,
			rejected: 0,
			interrupted: true,
			checkpoint: `${file}.hotpath-load.json`,
			resume_from: 21,
			error: { status: 404, detail: 'dataset "items" does not exist' },
		});
		expect(run.stderr).toMatch(/Not found \(404\): dataset "items" does not exist/);
		expect(run.stderr).toMatch(/--resume/);
		expect(existsSync(`${file}.hotpath-load.json`)).toBe(true);
	}, 30_000);

	it("without --json prints the same totals for people, the error on stderr", async () => {
		const { url } = await standIn(goneAtThird);
		const file = rowsFile("gone-human.ndjson", 50);
		const run = await runCli(["--url", url, "--key", "k", "load", "items", file, "--chunk-rows", "10", "--concurrency", "1", "--no-progress"]);
		expect(run.code).toBe(1);
		expect(run.stdout).toMatch(/^stopped after 20 rows from .*gone-human\.ndjson into items .*: 20 imported, 0 unchanged, 0 rejected/);
		expect(run.stderr).toMatch(/Not found \(404\)/);
	}, 30_000);
});
