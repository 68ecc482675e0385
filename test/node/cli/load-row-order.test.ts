// `hotpath load` of a file holding one key on several rows, without an event-time column: every row
// takes the file's modification time, so the tie breaks on the ids the CLI gives (the larger wins).
// Those ids end in the row's line or row number, and must sort as the numbers do, so that the file's
// last row of a key is the one that stays, as in a batch job's output appended to in order.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hotpath } from "@hotpath/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RowEncoder } from "../../../cli/load/rows.ts";
import { uniqueName, useDevServer } from "../dev-server.ts";
import { killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-load-row-order-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

const hp = (args: string[]) => runCli(["--url", server().url, "--key", server().adminKey, ...args]);
const dataset = uniqueName("cli_load_row_order");

beforeAll(async () => {
	await new Hotpath({ url: server().url, key: server().adminKey }).datasets.apply({ name: dataset, key: "id", fields: { n: "int" } });
}, 60_000);

describe("load: rows of one key without an event time", () => {
	it("gives ids that sort as the rows' numbers do (9 before 10, 99 before 100)", () => {
		const enc = new RowEncoder({ typing: "json", idPrefix: "hp:f:", defaultEventTime: 1000 });
		const idAt = (pos: number) => (JSON.parse((enc.encode({ pos, text: '{"id":"a","n":1}', end: 0 }) as { text: string }).text) as { _id: string })._id;
		const ids = [1, 9, 10, 99, 100, 12_345, 1_000_000].map(idAt);
		expect([...ids].sort()).toEqual(ids);
	});

	it("keeps the last row of a key in a CSV and in an NDJSON file", async () => {
		const csv = path.join(dir, "rows.csv");
		writeFileSync(csv, `id,n\n${Array.from({ length: 12 }, (_, i) => `c,${i + 1}`).join("\n")}\n`);
		const ndjson = path.join(dir, "rows.ndjson");
		writeFileSync(ndjson, `${Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: "j", n: i + 1 })).join("\n")}\n`);
		for (const file of [csv, ndjson]) expect((await hp(["load", dataset, file])).code).toBe(0);
		const client = new Hotpath({ url: server().url, key: server().adminKey });
		expect((await client.get(dataset, "c")).value).toEqual({ n: 12 });
		expect((await client.get(dataset, "j")).value).toEqual({ n: 12 });
	});
});
