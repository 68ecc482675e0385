// `hotpath load` usage errors found in the file itself: exit 2 before any request, and no checkpoint left behind.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

const dir = mkdtempSync(path.join(tmpdir(), "hotpath-load-usage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Nothing listens there: a load that sent a request would fail with a network error (exit 1), not 2.
const nowhere = ["--url", "http://127.0.0.1:9", "--key", "k"];

describe("--event-time-column", () => {
	it("naming a column the CSV header or the Parquet schema lacks is bad usage, listing the columns", async () => {
		const csv = path.join(dir, "rows.csv");
		writeFileSync(csv, "\ufeffid,updated_at\na,1700000000000\n");
		const parquet = path.join(dir, "rows.parquet");
		parquetWriteFile({
			filename: parquet,
			columnData: [
				{ name: "id", data: ["a"], type: "STRING" },
				{ name: "updated_at", data: [new Date(0)], type: "TIMESTAMP" },
			],
		});
		for (const file of [csv, parquet]) {
			const run = await runCli([...nowhere, "load", "d", file, "--event-time-column", "updated"]);
			expect({ file, code: run.code }).toEqual({ file, code: 2 });
			expect(run.stderr).toMatch(new RegExp(`--event-time-column updated: ${path.basename(file)} has no such column \\(it has id, updated_at\\)`));
			expect(existsSync(`${file}.hotpath-load.json`)).toBe(false);
		}
	}, 60_000);
});

describe("a CSV header naming a column twice", () => {
	it("is bad usage before any request, and leaves no checkpoint to resume", async () => {
		const csv = path.join(dir, "dup.csv");
		writeFileSync(csv, "id,score,score\na,1,2\n");
		const run = await runCli([...nowhere, "load", "d", csv]);
		expect(run.code).toBe(2);
		expect(run.stderr).toMatch(/dup\.csv: the header names column "score" twice/);
		expect(run.stderr).not.toMatch(/--resume/);
		expect(existsSync(`${csv}.hotpath-load.json`)).toBe(false);
	}, 60_000);
});

describe("a CSV header with a column without a name", () => {
	// A trailing comma (`id,score,`) made every row a rejection reading ": unknown field", naming nothing.
	it("is bad usage before any request, naming the column's position", async () => {
		for (const [name, text, at] of [
			["trailing.csv", "id,score,\na,1,\n", 3],
			["middle.csv", 'id,"",score\na,,1\n', 2],
		] as const) {
			const csv = path.join(dir, name);
			writeFileSync(csv, text);
			const run = await runCli([...nowhere, "load", "d", csv]);
			expect({ name, code: run.code }).toEqual({ name, code: 2 });
			expect(run.stderr).toContain(`${name}: column ${at} of the header has no name`);
			expect(existsSync(`${csv}.hotpath-load.json`)).toBe(false);
		}
	}, 60_000);
});
