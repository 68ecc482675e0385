// The `hotpath` CLI as a child process against the real `npm run dev`: exit codes, --json, specs, reads, pushes, keys,
// bulk loads (NDJSON, CSV, Parquet), resume after a kill, export/load round trip, rebuild and dead letters.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type ExportedRecord, Hotpath, type SpecInput } from "@hotpath/client";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, repoRoot, uniqueName, useDevServer } from "../dev-server.ts";
import { type CliRun, exited, json, killLeftovers, runCli, spawnCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-cli-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

/** The CLI pointed at the test server with the admin key. */
const hp = (args: string[], input?: string) => runCli(["--url", server().url, "--key", server().adminKey, ...args], { input });
const sdk = () => new Hotpath({ url: server().url, key: server().adminKey });
const file = (name: string, text: string) => {
	const p = path.join(dir, name);
	writeFileSync(p, text);
	return p;
};
const noStack = (run: CliRun) => expect(run.stderr).not.toMatch(/^\s+at /m);

async function exportAll(dataset: string): Promise<ExportedRecord[]> {
	const out: ExportedRecord[] = [];
	for await (const r of sdk().export(dataset)) out.push(r);
	return out;
}

describe("usage", () => {
	it("exits 2 for an unknown verb, a missing argument, a bad option value or an unreadable file, 0 for --help", async () => {
		const cases: [string[], RegExp][] = [
			[["nope"], /unknown command 'nope'/],
			[["get", "only_dataset"], /missing required argument 'key'/],
			[["lookup", "d", "k", "--max-staleness", "-1"], /max-staleness/],
			[["get", "d", "k", "--bogus"], /unknown option '--bogus'/],
			[["load", "d", path.join(dir, "none.ndjson")], /cannot read .*none\.ndjson: ENOENT/],
			[["load", "d", file("data.xyz", "")], /cannot tell the format/],
			[["datasets", "apply", path.join(dir, "missing.yaml")], /cannot read/],
			[["dlq", "replay"], /give a dead letter's id, or --all/],
			[["rebuild"], /give a dataset, or --all/],
			[["keys", "create", "k", "--scopes", "root"], /scopes/],
		];
		for (const [args, message] of cases) {
			const run = await hp(args);
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toMatch(message);
			noStack(run);
		}
		const help = await hp(["--help"]);
		expect(help.code).toBe(0);
		expect(help.stdout).toMatch(/Usage: hotpath/);
		expect(help.stdout).toMatch(/load \[options\] <dataset> <file>/);
	}, 60_000);

	it("runs as `npx hotpath` (the root package's bin)", async () => {
		const { spawnSync } = await import("node:child_process");
		const r = spawnSync("npx", ["hotpath", "--help"], { cwd: repoRoot, encoding: "utf8" });
		expect(r.status).toBe(0);
		expect(r.stdout).toMatch(/Usage: hotpath/);
	});
});

describe("datasets, reads, pushes, keys", () => {
	const scores = uniqueName("cli_scores");
	const tags = uniqueName("cli_tags");
	// Every test of this block starts from these two datasets, whatever ran before it.
	beforeAll(async () => {
		await sdk().datasets.apply({ name: scores, key: "item_id", fields: { score: "float", tags: "string[]", emb: { type: "vector", dim: 2 } } });
		await sdk().datasets.apply({ name: tags, key: "tag", fields: { count: "int" } });
	});

	it("applies a YAML file holding two specs (documents), shows and lists them", async () => {
		const first = uniqueName("cli_yaml_a");
		const second = uniqueName("cli_yaml_b");
		const yaml = file(
			"specs.yaml",
			`name: ${first}\nkey: item_id\nttl_seconds: 3600\ndescription: scores\nfields:\n  score: float\n  tags: string[]\n  emb: {type: vector, dim: 2}\n---\n- name: ${second}\n  key: tag\n  fields: {count: int}\n`,
		);
		const run = await hp(["datasets", "apply", yaml, "--json"]);
		expect(run.code).toBe(0);
		expect(json<{ applied: { name: string; status: string }[] }>(run).applied.map((a) => [a.name, a.status])).toEqual([
			[first, "created"],
			[second, "created"],
		]);
		const again = await hp(["datasets", "apply", yaml]);
		expect(again.code).toBe(0);
		expect(again.stdout).toBe(`updated ${first}\nupdated ${second}\n`);

		const shown = await hp(["datasets", "get", first, "--json"]);
		expect(json(shown)).toMatchObject({
			name: first,
			key: "item_id",
			ttl_seconds: 3600,
			description: "scores",
			fields: { score: { type: "float" }, tags: { type: "string[]" }, emb: { type: "vector", dim: 2 } },
		});
		const human = await hp(["datasets", "get", first]);
		expect(human.stdout).toMatch(/emb\s+vector\(2\)/);
		const list = json<{ datasets: { name: string }[] }>(await hp(["datasets", "list", "--json"]));
		expect(list.datasets.map((d) => d.name)).toEqual(expect.arrayContaining([first, second]));
	});

	it("refuses a bad spec file before applying anything (exit 2), and reports a 409 with its reasons (exit 1)", async () => {
		const other = uniqueName("cli_never");
		const bad = file("bad.yaml", `name: ${other}\nkey: k\nfields: {a: int}\n---\nname: broken\nfields: {a: int}\n`);
		const run = await hp(["datasets", "apply", bad]);
		expect(run.code).toBe(2);
		expect(run.stderr).toMatch(/bad\.yaml \(document 2\): broken: missing `key`/);
		expect((await hp(["datasets", "get", other])).code).toBe(1);

		const conflict = await hp(["datasets", "apply", file("conflict.json", JSON.stringify({ name: scores, key: "item_id", fields: { score: "int" } }))]);
		expect(conflict.code).toBe(1);
		expect(conflict.stderr).toMatch(/Conflict \(409\)/);
		expect(conflict.stderr).toMatch(/\/fields\/score: field "score" changes type from float to int/);
		noStack(conflict);
	});

	it("pushes NDJSON events (rejected lines by number), then gets and looks them up", async () => {
		const t = Date.now() - 10_000;
		const events = file(
			"events.ndjson",
			[
				JSON.stringify({ dataset: scores, key: "a", op: "upsert", value: { score: 0.5, tags: ["x"] }, event_time: t }),
				"",
				JSON.stringify({ dataset: scores, key: "b", op: "upsert", value: { score: "high" } }),
				"not json",
				JSON.stringify({ dataset: scores, key: "c", op: "upsert", value: { score: 2, emb: [1, 0] }, event_time: t }),
				JSON.stringify({ dataset: scores, key: "a", op: "patch", value: { score: 0.75 }, event_time: t + 1 }),
			].join("\n"),
		);
		const pushed = await hp(["push", events, "--json"]);
		expect(pushed.code).toBe(1);
		const report = json<{ events: number; accepted: number; rejected: number; rejections: { pos: number; error: string }[] }>(pushed);
		expect(report).toMatchObject({ events: 5, accepted: 3, rejected: 2 });
		expect(report.rejections.map((r) => r.pos)).toEqual([3, 4]);
		expect(report.rejections[0]?.error).toMatch(/score/);

		await eventually(async () => ((await sdk().get(scores, "a")).value?.score === 0.75 ? true : undefined));
		const got = await hp(["get", scores, "a", "--json"]);
		expect(got.code).toBe(0);
		expect(json(got)).toMatchObject({
			dataset: scores,
			key: "a",
			status: "present",
			value: { score: 0.75, tags: ["x"] },
			event_time: new Date(t + 1).toISOString(),
		});
		const human = await hp(["get", scores, "a", "--fields", "score"]);
		expect(human.stdout).toMatch(/^present\s+event_time/);
		expect(human.stdout).toContain('"score": 0.75');

		const missing = await hp(["get", scores, "zzz", "--json"]);
		expect(missing.code).toBe(1);
		expect(json(missing)).toMatchObject({ status: "not_found", value: null });

		await eventually(async () => ((await sdk().get(scores, "c")).status === "present" ? true : undefined));
		const looked = await hp(["lookup", scores, "c", "nope", "a", "--fields", "score", "--json"]);
		expect(looked.code).toBe(0);
		expect(json<{ records: { key: string; status: string; value: unknown }[] }>(looked).records.map((r) => [r.key, r.status, r.value])).toEqual([
			["c", "present", { score: 2 }],
			["nope", "not_found", null],
			["a", "present", { score: 0.75 }],
		]);

		// The same file again: its chunks carry the same Idempotency-Key, so no event is applied twice.
		const versions = (await sdk().history(scores, "a")).versions.length;
		expect(versions).toBe(2);
		const twice = await hp(["push", events, "--json"]);
		expect(json(twice)).toMatchObject({ accepted: 3, rejected: 2 });
		await new Promise((r) => setTimeout(r, 1500));
		expect((await sdk().history(scores, "a")).versions).toHaveLength(versions);

		const stdin = await hp(["push", "-", "--json"], `${JSON.stringify({ dataset: tags, key: "t1", op: "upsert", value: { count: 3 } })}\n`);
		expect(stdin.code).toBe(0);
		expect(json(stdin)).toMatchObject({ file: "-", events: 1, accepted: 1, rejected: 0 });
	});

	it("prints the problem's title and detail for an HTTP error (exit 1), and the problem itself with --json", async () => {
		const run = await runCli(["--url", server().url, "--key", "wrong", "datasets", "list"]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(/^error: Unauthorized \(401\): /);
		noStack(run);
		const asJson = await runCli(["--url", server().url, "--key", "wrong", "datasets", "list", "--json"]);
		expect(asJson.code).toBe(1);
		expect(json(asJson)).toMatchObject({ error: { status: 401, title: "Unauthorized", type: expect.any(String), detail: expect.any(String) } });
		const missing = await hp(["datasets", "get", uniqueName("nope")]);
		expect(missing.code).toBe(1);
		expect(missing.stderr).toMatch(/Not found \(404\): dataset "nope_\w+" does not exist/);
	});

	it("creates, lists and revokes a key; the key works until revoked", async () => {
		const created = await hp(["keys", "create", uniqueName("reader"), "--scopes", "read", "--datasets", scores, "--json"]);
		expect(created.code).toBe(0);
		const key = json<{ id: string; key: string; scopes: string[]; datasets: string[] }>(created);
		expect(key).toMatchObject({ scopes: ["read"], datasets: [scores] });
		const listed = json<{ keys: { id: string }[] }>(await hp(["keys", "list", "--json"]));
		expect(listed.keys.map((k) => k.id)).toContain(key.id);

		const asReader = (args: string[], input?: string) => runCli(["--url", server().url, "--key", key.key, ...args], { input });
		expect((await asReader(["datasets", "get", scores])).code).toBe(0);
		const denied = await asReader(["push", "-"], `${JSON.stringify({ dataset: scores, key: "r", op: "delete" })}\n`);
		expect(denied.code).toBe(1);
		expect(denied.stderr).toMatch(/Forbidden \(403\)/);
		expect((await hp(["keys", "revoke", key.id])).code).toBe(0);
		const revoked = await asReader(["datasets", "get", scores]);
		expect(revoked.code).toBe(1);
		expect(revoked.stderr).toMatch(/Unauthorized \(401\)/);
		expect((await hp(["keys", "revoke", key.id])).code).toBe(1);
	});

	it("shows a key's rate limit and expiry when it is created and listed", async () => {
		const name = uniqueName("limited");
		const expires = new Date(Date.now() + 3_600_000).toISOString();
		const created = await hp(["keys", "create", name, "--scopes", "read", "--rate-limit", "100/60", "--expires-at", expires]);
		expect(created.code).toBe(0);
		expect(created.stdout).toMatch(/^created key key_[\w-]+ \(limited_\w+\): scopes read, rate limit 100\/60s, expires \S+Z$/m);
		const listed = await hp(["keys", "list"]);
		expect(listed.stdout).toMatch(/^ID\s+NAME\s+SCOPES\s+DATASETS\s+RATE_LIMIT\s+EXPIRES\s+CREATED\s+REVOKED$/m);
		const row = listed.stdout.split("\n").find((line) => line.includes(name));
		expect(row).toMatch(new RegExp(`${name}\\s+read\\s+all\\s+100/60s\\s+${expires.slice(0, 19)}`));
	});

	it("says on stderr why it waits when a key's rate limit answers 429, then succeeds", async () => {
		const created = await hp(["keys", "create", uniqueName("slow"), "--scopes", "read", "--rate-limit", "1/2", "--json"]);
		const { key } = json<{ key: string }>(created);
		const asSlow = () => runCli(["--url", server().url, "--key", key, "datasets", "get", scores, "--json"]);
		expect((await asSlow()).code).toBe(0);
		const waited = await asSlow();
		expect(waited.code).toBe(0);
		expect(waited.stderr).toMatch(/^hotpath: 429 Too many requests; retry 1 in \d+\.\d s$/m);
		expect(json(waited)).toMatchObject({ name: scores }); // stdout holds only the result
	});

	it("reads the key from HOTPATH_KEY, or from .dev.vars in the current directory", async () => {
		const env = await runCli(["datasets", "get", scores, "--json"], { env: { HOTPATH_URL: server().url, HOTPATH_KEY: server().adminKey } });
		expect(env.code).toBe(0);
		const cwd = mkdtempSync(path.join(dir, "cwd-"));
		writeFileSync(path.join(cwd, ".dev.vars"), `OTHER=1\nHOTPATH_ADMIN_KEY="${server().adminKey}"\n`);
		const devVars = await runCli(["--url", server().url, "datasets", "get", scores, "--json"], { cwd });
		expect(devVars.code).toBe(0);
		expect(json(devVars)).toMatchObject({ name: scores });
	});

	it("shows stats, health and dead letters", async () => {
		const stats = await hp(["stats", "--json"]);
		expect(stats.code).toBe(0);
		expect(json(stats)).toHaveProperty("tiers");
		const health = await hp(["health", "--json"]);
		expect(json<{ tiers: Record<string, string> }>(health).tiers.d1).toBe("up");
		const dlq = await hp(["dlq", "list", "--limit", "5", "--json"]);
		expect(dlq.code).toBe(0);
		expect(Array.isArray(json<{ dead_letters: unknown[] }>(dlq).dead_letters)).toBe(true);
	});
});

// Everything below uses the routes being added to the worker with this CLI:
// POST /v1/datasets/:name/import, GET /v1/datasets/:name/records, the rebuild routes and the dead-letter bulk routes.
describe("load, export, rebuild, dead letters", () => {
	const items = uniqueName("cli_items");
	const interrupted = uniqueName("cli_interrupted");
	const itemSpec: SpecInput = {
		key: "item_id",
		fields: {
			n: "int",
			price: "float",
			ok: "bool",
			meta: "json",
			tags: "string[]",
			emb: { type: "vector", dim: 3 },
			name: "string",
		},
	};
	const row = (i: number) => ({
		item_id: `i${String(i).padStart(5, "0")}`,
		n: i,
		price: i / 4,
		ok: i % 2 === 0,
		meta: { i, nested: { even: i % 2 === 0 } },
		tags: [`t${i % 3}`],
		emb: [i, 0.5, -1],
		name: `item ${i}`,
	});
	/** What the server stores for row(i): the value, without the key field. */
	const storedValue = (i: number) => {
		const { item_id: _, ...value } = row(i);
		return value;
	};

	beforeAll(async () => {
		await sdk().datasets.apply({ name: items, ...itemSpec });
		await sdk().datasets.apply({ name: interrupted, ...itemSpec });
	});

	it("loads NDJSON: rows, rejected lines by number, event_time from the file's mtime, and a second run changes nothing", async () => {
		const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify(row(i)));
		lines.splice(10, 0, JSON.stringify({ item_id: "bad1", n: "ten" })); // line 11
		lines.splice(20, 0, "{broken"); // line 21
		lines.splice(30, 0, ""); // line 31, blank: skipped
		lines.splice(40, 0, JSON.stringify({ n: 1 })); // line 41: no key
		const nd = file("items.ndjson", `${lines.join("\n")}\n`);
		const mtime = Math.floor(statSync(nd).mtimeMs);

		const run = await hp(["load", items, nd, "--chunk-rows", "64", "--json"]);
		expect(run.code).toBe(1);
		const report = json<{ rows: number; imported: number; unchanged: number; rejected: number; rejections: { pos: number }[]; unit: string }>(run);
		expect(report).toMatchObject({ rows: 303, imported: 300, unchanged: 0, rejected: 3, unit: "line" });
		expect(report.rejections.map((r) => r.pos)).toEqual([11, 21, 41]);
		expect(existsSync(`${nd}.hotpath-load.json`)).toBe(false);

		const got = await sdk().get(items, "i00007");
		expect(got.value).toEqual(storedValue(7));
		expect(got.event_time).toBe(new Date(mtime).toISOString());

		const again = json(await hp(["load", items, nd, "--json"]));
		expect(again).toMatchObject({ rows: 303, imported: 0, unchanged: 300, rejected: 3 });
		const human = await hp(["load", items, nd]);
		expect(human.stdout).toMatch(/loaded 303 rows from .*items\.ndjson into cli_items_\w+ in .*: 0 imported, 300 unchanged, 3 rejected/);
		expect(human.stdout).toMatch(/line 21: /);
	}, 60_000);

	it("counts a chunk with no valid row (the route's 400) as rejections, by line", async () => {
		const nd = file("all-bad.ndjson", `${[1, 2, 3].map((i) => JSON.stringify({ item_id: `bad${i}`, n: "not an int" })).join("\n")}\n`);
		const run = await hp(["load", items, nd, "--json"]);
		expect(run.code).toBe(1);
		const report = json<{ rows: number; imported: number; rejected: number; rejections: { pos: number; error: string }[] }>(run);
		expect(report).toMatchObject({ rows: 3, imported: 0, rejected: 3 });
		expect(report.rejections.map((r) => r.pos)).toEqual([1, 2, 3]);
		expect(report.rejections[0]?.error).toMatch(/n/);
	});

	it("loads CSV, typing cells by the spec (JSON text for lists, vectors and json, empty = null)", async () => {
		const csv = file(
			"items.csv",
			[
				"item_id,n,price,ok,meta,tags,emb,name,_event_time",
				`c1,1,0.5,true,"{""a"":1}","[""x"",""y""]","[0.1,0.2,0.3]","with, comma",2026-01-02T03:04:05Z`,
				"c2,,,,,,,,",
				"c3,three,1,true,,,,,",
				`c4,4,2,no,[1],[],"[1,2,3]","multi`,
				`line",1767323045000`,
				"c5,5",
			].join("\n"),
		);
		const run = await hp(["load", items, csv, "--json"]);
		expect(run.code).toBe(1);
		const report = json<{ rows: number; imported: number; rejected: number; rejections: { pos: number; error: string }[] }>(run);
		expect(report).toMatchObject({ rows: 5, imported: 3, rejected: 2 });
		expect(report.rejections).toEqual([
			{ pos: 4, error: 'n: "three" is not an integer' },
			{ pos: 7, error: expect.stringMatching(/columns length is 9, got 2/) },
		]);
		const [result] = await sdk().lookup([{ dataset: items, keys: ["c1", "c2", "c4"] }]);
		expect(result?.records.map((r) => [r.value, r.event_time])).toEqual([
			[{ n: 1, price: 0.5, ok: true, meta: { a: 1 }, tags: ["x", "y"], emb: [0.1, 0.2, 0.3], name: "with, comma" }, "2026-01-02T03:04:05.000Z"],
			[{ n: null, price: null, ok: null, meta: null, tags: null, emb: null, name: null }, new Date(Math.floor(statSync(csv).mtimeMs)).toISOString()],
			[{ n: 4, price: 2, ok: false, meta: [1], tags: [], emb: [1, 2, 3], name: "multi\nline" }, new Date(1767323045000).toISOString()],
		]);
	});

	it("loads Parquet (int64, lists, json, timestamps; --event-time-column)", async () => {
		const n = 2500;
		const pq = path.join(dir, "items.parquet");
		parquetWriteFile({
			filename: pq,
			rowGroupSize: 1000,
			columnData: [
				{ name: "item_id", data: Array.from({ length: n }, (_, i) => `p${i}`), type: "STRING" },
				{ name: "n", data: Array.from({ length: n }, (_, i) => BigInt(i)), type: "INT64" },
				{ name: "price", data: Array.from({ length: n }, (_, i) => (i === 5 ? null : i / 8)), type: "DOUBLE" },
				{ name: "ok", data: Array.from({ length: n }, (_, i) => i % 3 === 0), type: "BOOLEAN" },
				{ name: "meta", data: Array.from({ length: n }, (_, i) => ({ i })), type: "JSON" },
				{ name: "tags", data: Array.from({ length: n }, (_, i) => [`t${i}`]), type: "JSON" },
				{ name: "emb", data: Array.from({ length: n }, (_, i) => (i === 7 ? [1, 2] : [i, 1, 2])), type: "JSON" },
				{ name: "updated", data: Array.from({ length: n }, (_, i) => new Date(1_767_000_000_000 + i)), type: "TIMESTAMP" },
			],
		});
		const run = await hp(["load", items, pq, "--event-time-column", "updated", "--chunk-rows", "500", "--json"]);
		const report = json<{ rows: number; imported: number; rejected: number; unit: string; rejections: { pos: number; error: string }[] }>(run);
		expect(report).toMatchObject({ rows: n, imported: n - 1, rejected: 1, unit: "row" });
		expect(report.rejections[0]?.pos).toBe(8);
		expect(report.rejections[0]?.error).toMatch(/emb/);
		const got = await sdk().get(items, "p1999");
		expect(got.value).toEqual({ n: 1999, price: 1999 / 8, ok: false, meta: { i: 1999 }, tags: ["t1999"], emb: [1999, 1, 2] });
		expect(got.event_time).toBe(new Date(1_767_000_000_000 + 1999).toISOString());
		expect((await sdk().get(items, "p5")).value?.price).toBeNull();
	});

	it("resumes after the load is killed: every row exactly once, the rejected count right", async () => {
		const big = uniqueName("cli_resume");
		await sdk().datasets.apply({ name: big, ...itemSpec });
		const total = 8000;
		const bad = new Set([17, 2500, 5001, 7999]);
		const lines = Array.from({ length: total }, (_, i) => (bad.has(i + 1) ? JSON.stringify({ item_id: `x${i}`, n: "bad" }) : JSON.stringify(row(i))));
		const nd = file("resume.ndjson", `${lines.join("\n")}\n`);
		const checkpoint = `${nd}.hotpath-load.json`;
		const args = ["--url", server().url, "--key", server().adminKey, "load", big, nd, "--chunk-rows", "40", "--concurrency", "2"];

		const first = spawnCli(args);
		const doneBeforeKill = await eventually(
			async () => {
				if (!existsSync(checkpoint)) return undefined;
				try {
					const cp = JSON.parse(readFileSync(checkpoint, "utf8")) as { prefix: { chunks: number } };
					return cp.prefix.chunks >= 10 ? cp.prefix.chunks : undefined;
				} catch {
					return undefined; // caught between write and rename
				}
			},
			60_000,
			20,
		);
		expect(first.exitCode).toBeNull(); // still running: the kill lands mid-way
		first.kill("SIGKILL");
		expect((await exited(first)).signal).toBe("SIGKILL");
		expect(doneBeforeKill).toBeLessThan(total / 40);

		const resumed = await hp([...args.slice(4), "--resume", "--json"]);
		expect(resumed.code).toBe(1); // rows were rejected
		const report = json<{ rows: number; imported: number; unchanged: number; rejected: number; resumed: boolean; rejections: { pos: number }[] }>(resumed);
		expect(report.resumed).toBe(true);
		expect(report.rows).toBe(total);
		expect(report.rejected).toBe(bad.size);
		expect(report.rejections.map((r) => r.pos)).toEqual([...bad]);
		expect(report.imported + report.unchanged).toBe(total - bad.size);
		expect(resumed.stderr).toMatch(/resuming: \d+ chunk\(s\)/);
		expect(existsSync(checkpoint)).toBe(false);

		const stored = await exportAll(big);
		expect(stored).toHaveLength(total - bad.size);
		expect(new Set(stored.map((r) => r.key)).size).toBe(total - bad.size);
		for (const r of stored) expect(r.value).toEqual(storedValue(Number(r.key.slice(1))));
	}, 180_000);

	it("stops cleanly on Ctrl-C (exit 130, checkpoint kept) and resumes", async () => {
		const nd = file("sigint.ndjson", `${Array.from({ length: 6000 }, (_, i) => JSON.stringify(row(100_000 + i))).join("\n")}\n`);
		const checkpoint = `${nd}.hotpath-load.json`;
		const args = ["--url", server().url, "--key", server().adminKey, "load", interrupted, nd, "--chunk-rows", "30", "--concurrency", "2"];
		const child = spawnCli(args);
		await eventually(
			async () => (existsSync(checkpoint) && JSON.parse(readFileSync(checkpoint, "utf8")).prefix.chunks >= 5 ? true : undefined),
			60_000,
			20,
		).catch(() => undefined);
		child.kill("SIGINT");
		const stopped = await exited(child);
		expect(stopped.code).toBe(130);
		expect(stopped.stderr).toMatch(/--resume/);
		expect(existsSync(checkpoint)).toBe(true);
		const resumed = json(await hp([...args.slice(4), "--resume", "--json"]));
		expect(resumed).toMatchObject({ rows: 6000, rejected: 0, resumed: true });
		expect(existsSync(checkpoint)).toBe(false);
	}, 180_000);

	it("exports NDJSON that loads into an empty dataset as equal records", async () => {
		// A tombstone and a patched record in the source, so the export is more than one import's rows.
		await sdk().push([
			{ dataset: items, key: "i00001", op: "delete", event_time: Date.now() },
			{ dataset: items, key: "i00002", op: "patch", value: { name: "patched" }, event_time: Date.now() },
		]);
		await eventually(async () => ((await sdk().get(items, "i00002")).value?.name === "patched" ? true : undefined));
		await eventually(async () => ((await sdk().get(items, "i00001")).status === "not_found" ? true : undefined));

		const fresh = uniqueName("cli_fresh");
		await sdk().datasets.apply({ name: fresh, ...itemSpec });
		const out = path.join(dir, "export.ndjson");
		const exported = await hp(["export", items, "-o", out, "--json"]);
		expect(exported.code).toBe(0);
		const source = await exportAll(items);
		expect(json(exported)).toMatchObject({ dataset: items, records: source.length });
		const firstLine = JSON.parse(readFileSync(out, "utf8").split("\n")[0] ?? "{}") as Record<string, unknown>;
		expect(Object.keys(firstLine)[0]).toBe("item_id");
		expect(firstLine).toHaveProperty("_event_time");

		const loaded = await hp(["load", fresh, out, "--json"]);
		expect(loaded.code).toBe(0);
		expect(json(loaded)).toMatchObject({ rows: source.length, imported: source.length, rejected: 0 });
		expect(await exportAll(fresh)).toEqual(source);

		// To stdout as well, in the same rows.
		const stdout = await hp(["export", items]);
		expect(stdout.code).toBe(0);
		expect(stdout.stdout).toBe(readFileSync(out, "utf8"));
	}, 60_000);

	it("rebuilds a dataset and waits for it", async () => {
		const run = await hp(["rebuild", items, "--json", "--interval", "0.2", "--timeout", "50"]);
		// The status first: on a failure its `error` says why.
		expect(json(run)).toMatchObject({ dataset: items, mode: "refill", status: "done" });
		expect(run.code).toBe(0);
		const drop = await hp(["rebuild", items, "--mode", "drop", "--json", "--interval", "0.2", "--timeout", "50"]);
		expect(json(drop)).toMatchObject({ dataset: items, mode: "drop", status: "done" });
		expect(drop.code).toBe(0);
	}, 120_000);

	it("replays and purges dead letters in bulk", async () => {
		const replay = await hp(["dlq", "replay", "--all", "--dataset", items, "--json"]);
		expect(replay.code).toBe(0);
		expect(json(replay)).toEqual({ replayed: expect.any(Number) });
		const replayedOnly = await hp(["dlq", "purge", "--all", "--replayed", "--dataset", items, "--json"]);
		expect(replayedOnly.code).toBe(0);
		expect(json(replayedOnly)).toEqual({ purged: expect.any(Number) });
		const purge = await hp(["dlq", "purge", "--all", "--dataset", items, "--json"]);
		expect(purge.code).toBe(0);
		expect(json(purge)).toEqual({ purged: expect.any(Number) });
		const both = await hp(["dlq", "purge", "--all", "--replayed", "--unreplayed"]);
		expect(both.code).toBe(2);
		expect(both.stderr).toMatch("--replayed or --unreplayed, not both");
	});
});
