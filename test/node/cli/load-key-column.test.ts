// A CSV or Parquet file without the dataset's key column cannot load a single row: `hotpath load`
// says so before sending anything (exit 2), instead of one rejection per row (exit 1), or, for a
// Parquet file read with --format csv (a header of binary text and no rows), "loaded 0 rows" and exit 0.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hotpath } from "@hotpath/client";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-load-key-column-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

const hp = (args: string[]) => runCli(["--url", server().url, "--key", server().adminKey, ...args]);
const dataset = uniqueName("cli_load_key_column");

beforeAll(async () => {
	await new Hotpath({ url: server().url, key: server().adminKey }).datasets.apply({ name: dataset, key: "user_id", fields: { age: "int", country: "string" } });
}, 60_000);

describe("load of a file without the key column", () => {
	it("refuses a CSV whose header lacks the key field, naming it and the columns, and leaves no checkpoint", async () => {
		const csv = path.join(dir, "nokey.csv");
		writeFileSync(csv, "age,country\n1,DE\n2,US\n");
		const run = await hp(["load", dataset, csv]);
		expect(run.code).toBe(2);
		expect(run.stderr).toContain(`nokey.csv has no column "user_id", ${dataset}'s key field (its csv columns: "age", "country")`);
		expect(run.stderr).not.toContain("rejected");
		expect(existsSync(`${csv}.hotpath-load.json`)).toBe(false);
	});

	it("refuses a Parquet file read with --format csv instead of loading nothing with exit 0", async () => {
		const parquet = path.join(dir, "rows.parquet");
		parquetWriteFile({
			filename: parquet,
			columnData: [
				{ name: "user_id", data: ["a", "b"], type: "STRING" },
				{ name: "age", data: [1, 2], type: "INT32" },
			],
		});
		const run = await hp(["--json", "load", dataset, parquet, "--format", "csv"]);
		expect(run.code).toBe(2);
		expect(run.stderr).toContain(`rows.parquet has no column "user_id"`);
		expect(run.stdout).toBe("");
		// Read as what it is, the same file loads.
		const ok = await hp(["--json", "load", dataset, parquet]);
		expect(ok.code).toBe(0);
		expect(JSON.parse(ok.stdout)).toMatchObject({ rows: 2, imported: 2, rejected: 0 });
	});

	it("still loads a CSV that has the key column, and a header-only CSV (no rows) stays a success", async () => {
		const csv = path.join(dir, "ok.csv");
		writeFileSync(csv, "user_id,age\nk1,1\n");
		expect((await hp(["load", dataset, csv])).code).toBe(0);
		const empty = path.join(dir, "header-only.csv");
		writeFileSync(empty, "user_id,age\n");
		expect((await hp(["load", dataset, empty])).code).toBe(0);
	});
});
