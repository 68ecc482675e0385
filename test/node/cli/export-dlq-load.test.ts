// Edges of `hotpath export`, `dlq` and `load` found by following the README as a newcomer: an export
// to a path that cannot be written, an export piped into `head`, dead letters waiting in KV (ids
// `kv:<message id>`), and rejected NDJSON lines of a later chunk reported at the file's own line.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hotpath } from "@hotpath/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { type CliRun, exited, json, killLeftovers, runCli, spawnCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-cli-edges-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

const globals = () => ["--url", server().url, "--key", server().adminKey];
const hp = (args: string[]) => runCli([...globals(), ...args]);
const sdk = () => new Hotpath({ url: server().url, key: server().adminKey });
const noStack = (run: CliRun) => expect(run.stderr).not.toMatch(/^\s+at |^Node\.js v/m);

describe("export", () => {
	const dataset = uniqueName("cli_export_edges");
	const rows = 3000;

	beforeAll(async () => {
		await sdk().datasets.apply({ name: dataset, key: "id", fields: { n: "int", pad: "string" } });
		for (let start = 0; start < rows; start += 1000) {
			const batch = Array.from({ length: 1000 }, (_, i) => ({ id: `r${String(start + i).padStart(5, "0")}`, n: start + i, pad: "x".repeat(200) }));
			await sdk().import(dataset, batch);
		}
	}, 60_000);

	it("refuses an output path that cannot be written as bad usage (exit 2), with no stack", async () => {
		const target = path.join(dir, "no-such-dir", "out.ndjson");
		for (const extra of [[], ["--json"]]) {
			const run = await hp(["export", dataset, "-o", target, ...extra]);
			expect(run.code).toBe(2);
			expect(run.stderr).toMatch(/cannot write .*out\.ndjson: ENOENT/);
			noStack(run);
		}
	});

	it("ends quietly with exit 0 when its reader closes the pipe (| head)", async () => {
		const child = spawnCli([...globals(), "export", dataset]);
		// Read the first line, then close the pipe as `head -1` would.
		await new Promise<void>((resolve) => {
			const onData = () => {
				if (!child.output.stdout.includes("\n")) return;
				child.stdout?.off("data", onData);
				child.stdout?.destroy();
				resolve();
			};
			child.stdout?.on("data", onData);
		});
		const run = await exited(child);
		expect(run.code).toBe(0);
		expect(run.stderr).not.toMatch(/EPIPE/);
		noStack(run);
	}, 60_000);

	it("any verb ends quietly when its reader is gone before it writes (| head, | true), stdout and stderr alike", async () => {
		for (const args of [["datasets", "list", "--json"], ["health"], ["dlq", "list", "--json"], ["export", dataset]]) {
			const child = spawnCli([...globals(), ...args]);
			// The reader closes its end before the CLI has written anything (`hotpath ... 2>&1 | true`).
			child.stdout?.destroy();
			child.stderr?.destroy();
			const run = await exited(child);
			expect({ args, code: run.code, signal: run.signal }).toEqual({ args, code: 0, signal: null });
		}
		// stderr still open: nothing about the closed stdout is printed, and no stack.
		const child = spawnCli([...globals(), "datasets", "list", "--json"]);
		child.stdout?.destroy();
		const run = await exited(child);
		expect(run.code).toBe(0);
		expect(run.stderr).toBe("");
	}, 60_000);

	it("still writes every record to a file", async () => {
		const out = path.join(dir, "all.ndjson");
		const run = await hp(["export", dataset, "-o", out, "--json"]);
		expect(run.code).toBe(0);
		expect(json(run)).toMatchObject({ dataset, records: rows, file: out });
	});
});

describe("dlq", () => {
	it("takes a dead letter waiting in KV by its kv:<message id>, as `dlq list` shows it", async () => {
		for (const verb of ["replay", "purge"]) {
			const run = await hp(["dlq", verb, "kv:no-such-message", "--json"]);
			// The id reaches the server, which has no such dead letter: a failed operation, not bad usage.
			expect({ verb, code: run.code }).toEqual({ verb, code: 1 });
			expect(json<{ error: { status: number; detail: string } }>(run).error).toMatchObject({ status: 404, detail: "no dead letter kv:no-such-message" });
			expect(run.stderr).toMatch(/Not found \(404\): no dead letter kv:no-such-message/);
			noStack(run);
		}
	});

	it("still refuses an id that is neither a positive integer nor kv:<message id> (exit 2)", async () => {
		for (const id of ["abc", "0", "-3", "1.5", "kv:"]) {
			const run = await hp(["dlq", "purge", id]);
			expect({ id, code: run.code }).toEqual({ id, code: 2 });
			expect(run.stderr).toMatch(/positive integer or kv:<message id>/);
		}
	});
});

describe("load", () => {
	it("reports a line that is not JSON at the file's own line, without the chunk's line number", async () => {
		const dataset = uniqueName("cli_load_lines");
		await sdk().datasets.apply({ name: dataset, key: "id", fields: { n: "int" } });
		const lines = [1, 2, 3, 4].map((n) => JSON.stringify({ id: `k${n}`, n }));
		// Lines 5 and 6 are the first two of the third chunk: the server numbers them 1 and 2.
		lines.push('{"id": broken', '{"id": "k6", "n": 6,}', JSON.stringify({ id: "k7", n: 7 }));
		const file = path.join(dir, "lines.ndjson");
		writeFileSync(file, `${lines.join("\n")}\n`);
		const run = await hp(["load", dataset, file, "--chunk-rows", "2", "--json"]);
		const report = json<{ rows: number; imported: number; rejections: { pos: number; error: string }[] }>(run);
		expect(report).toMatchObject({ rows: 7, imported: 5 });
		expect(report.rejections.map((r) => r.pos)).toEqual([5, 6]);
		for (const r of report.rejections) {
			expect(r.error).toMatch(/^not valid JSON: /);
			expect(r.error).not.toMatch(/line \d+ is not valid JSON/);
		}
		// Why, as the file's own line says it: positions and excerpts of that line, not of the text sent with its _id and _event_time.
		const parseError = (line: string) => {
			try {
				JSON.parse(line);
			} catch (e) {
				return `not valid JSON: ${(e as Error).message}`;
			}
		};
		expect(report.rejections.map((r) => r.error)).toEqual([parseError('{"id": broken'), parseError('{"id": "k6", "n": 6,}')]);
		expect(report.rejections[1]?.error).toMatch(/at position 20 \(line 1 column 21\)$/);
		const human = await hp(["load", dataset, file, "--chunk-rows", "2"]);
		expect(human.stdout).toMatch(/^ {2}line 5: not valid JSON: /m);
		expect(human.stdout).not.toMatch(/line \d+ is not valid JSON/);
	}, 60_000);

	it("loads NDJSON with a key that has only the write scope the import route needs; CSV needs read to type cells, and says so", async () => {
		const dataset = uniqueName("cli_load_write_only");
		await sdk().datasets.apply({ name: dataset, key: "id", fields: { n: "int" } });
		const { key } = await sdk().keys.create({ name: "loader", scopes: ["write"], datasets: [dataset] });
		const ndjson = path.join(dir, "write-only.ndjson");
		writeFileSync(ndjson, `${JSON.stringify({ id: "a", n: 1 })}\n${JSON.stringify({ id: "b", n: "x" })}\n`);
		const load = await runCli(["--url", server().url, "--key", key, "load", dataset, ndjson, "--json"]);
		expect(load.code).toBe(1);
		expect(json(load)).toMatchObject({ rows: 2, imported: 1, rejected: 1, rejections: [{ pos: 2 }] });
		expect((await sdk().get(dataset, "a")).value).toEqual({ n: 1 });
		const csv = path.join(dir, "write-only.csv");
		writeFileSync(csv, "id,n\nc,3\n");
		const typed = await runCli(["--url", server().url, "--key", key, "load", dataset, csv]);
		expect(typed.code).toBe(1);
		expect(typed.stderr).toMatch(/reads .*'s spec to type csv cells: the key needs the read scope besides write/);
		noStack(typed);
	}, 60_000);

	it("leaves no checkpoint (nor advice to --resume) when the load fails before any chunk was done", async () => {
		const mine = uniqueName("cli_load_mine");
		const other = uniqueName("cli_load_other");
		for (const name of [mine, other]) await sdk().datasets.apply({ name, key: "id", fields: { n: "int" } });
		const { key } = await sdk().keys.create({ name: "loader", scopes: ["read", "write"], datasets: [mine] });
		const file = path.join(dir, "out-of-bounds.ndjson");
		writeFileSync(file, `${JSON.stringify({ id: "a", n: 1 })}\n`);
		const run = await runCli(["--url", server().url, "--key", key, "load", other, file]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(/Forbidden \(403\)/);
		expect(run.stderr).not.toMatch(/--resume/);
		expect(existsSync(`${file}.hotpath-load.json`)).toBe(false);
		noStack(run);
	}, 60_000);
});
