// Numbers JSON cannot carry. The server refuses 1e400, NaN and Infinity in a value ("expected a
// finite number"), but `hotpath push` parsed each line (1e400 reads as Infinity) and sent it again
// through JSON.stringify, which writes null: the event was accepted with a missing feature, exit 0.
// `hotpath load` of Parquet did the same with NaN and infinite doubles, where CSV rejects them by line.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hotpath } from "@hotpath/client";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, uniqueName, useDevServer } from "../dev-server.ts";
import { json, killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-non-finite-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

const hp = (args: string[]) => runCli(["--url", server().url, "--key", server().adminKey, ...args]);
const sdk = () => new Hotpath({ url: server().url, key: server().adminKey });
const dataset = uniqueName("cli_non_finite");

type Report = { accepted?: number; imported?: number; rejected: number; rejections: { pos: number; error: string }[] };

beforeAll(async () => {
	await sdk().datasets.apply({ name: dataset, key: "id", fields: { n: "int", x: "float", meta: "json" } });
}, 60_000);

describe("numbers JSON cannot carry", () => {
	it("push rejects a line holding 1e400 by its number, naming where, and never sends it as null", async () => {
		const t = Date.now() - 10_000;
		const file = path.join(dir, "events.ndjson");
		writeFileSync(
			file,
			[
				JSON.stringify({ dataset, key: "p1", op: "upsert", value: { x: 0.5, n: 1 }, event_time: t }),
				`{"dataset":"${dataset}","key":"p2","op":"upsert","value":{"x":1e400,"n":5},"event_time":${t}}`,
				`{"dataset":"${dataset}","key":"p3","op":"upsert","value":{"n":5,"meta":{"a":-1e999}},"event_time":${t}}`,
				JSON.stringify({ dataset, key: "p4", op: "upsert", value: { x: 2, n: 4 }, event_time: t }),
			].join("\n"),
		);
		const run = await hp(["push", file, "--json"]);
		expect(run.code).toBe(1);
		const report = json<Report>(run);
		expect(report).toMatchObject({ accepted: 2, rejected: 2 });
		expect(report.rejections.map((r) => r.pos)).toEqual([2, 3]);
		expect(report.rejections[0]?.error).toContain("value.x: expected a finite number, not Infinity");
		expect(report.rejections[1]?.error).toContain("value.meta.a: expected a finite number, not -Infinity");
		await eventually(async () => ((await sdk().get(dataset, "p4")).status === "present" ? true : undefined));
		for (const key of ["p2", "p3"]) expect((await sdk().get(dataset, key)).status).toBe("not_found");
	});

	it("load of Parquet rejects a NaN or infinite double by row number and column, as CSV rejects it by line", async () => {
		const file = path.join(dir, "rows.parquet");
		parquetWriteFile({
			filename: file,
			columnData: [
				{ name: "id", data: ["q1", "q2", "q3", "q4", "q5"], type: "STRING" },
				{ name: "n", data: [1, 2, 3, 4, 5], type: "INT32" },
				{ name: "x", data: [0.5, Number.NaN, 4, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY], type: "DOUBLE" },
			],
		});
		const run = await hp(["--json", "load", dataset, file]);
		expect(run.code).toBe(1);
		const report = json<Report>(run);
		expect(report).toMatchObject({ imported: 2, rejected: 3 });
		expect(report.rejections).toEqual([
			{ pos: 2, error: "x: NaN is not a finite number" },
			{ pos: 4, error: "x: Infinity is not a finite number" },
			{ pos: 5, error: "x: -Infinity is not a finite number" },
		]);
		const found = await sdk().lookup([{ dataset, keys: ["q1", "q2", "q3", "q4", "q5"] }]);
		expect(found[0]?.records.map((r) => [r.key, r.status, r.value?.x])).toEqual([
			["q1", "present", 0.5],
			["q2", "not_found", undefined],
			["q3", "present", 4],
			["q4", "not_found", undefined],
			["q5", "not_found", undefined],
		]);
	});
});
