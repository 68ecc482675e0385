// `hotpath search` and `hotpath history` as child processes against the real `npm run dev`: tables
// for people, --json and --ndjson for scripts, paging with --cursor and --all, --query bodies,
// exit 2 for bad usage and exit 1 (the problem's title and detail, no stack) for what the server refuses.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type HistoryResult, Hotpath, type SearchResult } from "@hotpath/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, uniqueName, useDevServer } from "../dev-server.ts";
import { type CliRun, json, killLeftovers, runCli } from "./run-cli.ts";

const server = useDevServer();
const dir = mkdtempSync(path.join(tmpdir(), "hotpath-cli-search-"));
afterAll(() => {
	killLeftovers();
	rmSync(dir, { recursive: true, force: true });
});

const hp = (args: string[], input?: string) => runCli(["--url", server().url, "--key", server().adminKey, ...args], { input });
const sdk = () => new Hotpath({ url: server().url, key: server().adminKey });
const noStack = (run: CliRun) => expect(run.stderr).not.toMatch(/^\s+at /m);
const ndjson = <T>(run: CliRun): T[] =>
	run.stdout
		.split("\n")
		.filter(Boolean)
		.map((l) => JSON.parse(l) as T);

/** 24 books: every other one has "ocean" in its title, every third is poetry; prices 3..118. */
const books = Array.from({ length: 24 }, (_, i) => ({
	isbn: `b${String(i).padStart(2, "0")}`,
	title: `${i % 2 === 0 ? "the ocean" : "a mountain"} ${i % 3 === 0 ? "poems" : "story"} volume ${i}`,
	genre: i % 3 === 0 ? "poetry" : "fiction",
	price: 3 + i * 5,
	tags: i % 4 === 0 ? ["award"] : [],
	emb: [Math.cos(i / 4), Math.sin(i / 4)],
}));

const library = uniqueName("cli_library");

beforeAll(async () => {
	await sdk().datasets.apply({
		name: library,
		key: "isbn",
		fields: { title: "string", genre: "string", price: "float", tags: "string[]", emb: { type: "vector", dim: 2 } },
		search: { text: ["title", "tags"], filters: ["genre", "price", "tags"], vector: "emb" },
	});
	await sdk().import(
		library,
		books.map((b) => ({ ...b, _event_time: Date.now() - 60_000 })),
	);
	await eventually(async () => {
		const s = await sdk().searchStatus(library);
		return s.status === "ready" && s.docs === books.length ? true : undefined;
	}, 60_000);
}, 90_000);

describe("hotpath search", () => {
	it("prints a table of hits (with highlights), and the page with --json", async () => {
		const run = await hp(["search", library, "ocean", "poems", "--highlight", "--limit", "3", "--fields", "title,price"]);
		expect(run.code).toBe(0);
		const lines = run.stdout.trimEnd().split("\n");
		expect(lines[0]).toMatch(/^KEY\s+SCORE\s+STATUS\s+AGE\s+VALUE$/);
		expect(lines[1]).toMatch(/^b\d\d\s+[\d.e-]+\s+present\s+\S+\s+\{"title":"the ocean poems volume \d+","price":\d+\}$/);
		// stdout is not a terminal: the marks are printed as the server sent them.
		expect(lines[2]).toMatch(/^ {4}title: the <mark>ocean<\/mark> <mark>poems<\/mark> volume \d+$/);
		expect(run.stderr).toMatch(/^3 hits \(took \d+ms\)$/m);
		expect(run.stderr).toMatch(/^more: --cursor \S+/m);

		const asJson = await hp(["search", library, "--text", "ocean poems", "--limit", "3", "--json"]);
		expect(asJson.code).toBe(0);
		expect(asJson.stderr).toBe("");
		const page = json<SearchResult>(asJson);
		expect(page.hits).toHaveLength(3);
		expect(page.next_cursor).toEqual(expect.any(String));
		expect(page.took_ms).toEqual(expect.any(Number));
		expect(page.hits[0]).toMatchObject({ status: "present", score: expect.any(Number), event_time: expect.any(String), age_ms: expect.any(Number) });
		// ocean (even) and poems (multiple of 3): multiples of 6.
		expect(page.hits.every((h) => Number(h.key.slice(1)) % 6 === 0)).toBe(true);
	});

	it("filters and sorts; pages with --cursor, and --all follows every page (--json, --ndjson, table)", async () => {
		const expected = books
			.filter((b) => b.genre === "fiction" && b.price < 100)
			.sort((a, b) => b.price - a.price)
			.map((b) => b.isbn);
		expect(expected.length).toBe(13);
		const base = ["search", library, "--filter", '{"genre": "fiction", "price": {"lt": 100}}', "--sort", "-price", "--limit", "5", "--fields", "price"];

		const first = json<SearchResult>(await hp([...base, "--json"]));
		expect(first.hits.map((h) => h.key)).toEqual(expected.slice(0, 5));
		const second = json<SearchResult>(await hp([...base, "--cursor", first.next_cursor ?? "", "--json"]));
		expect(second.hits.map((h) => h.key)).toEqual(expected.slice(5, 10));

		const all = await hp([...base, "--all", "--json"]);
		expect(all.code).toBe(0);
		const doc = json<SearchResult & { pages: number }>(all);
		expect(doc.hits.map((h) => h.key)).toEqual(expected);
		expect(doc).toMatchObject({ next_cursor: null, pages: 3 });

		const lines = await hp([...base, "--all", "--ndjson"]);
		expect(lines.code).toBe(0);
		expect(ndjson<{ key: string; value: unknown }>(lines).map((h) => [h.key, h.value])).toEqual(
			expected.map((k) => [k, { price: books.find((b) => b.isbn === k)?.price }]),
		);

		const table = await hp([...base, "--all"]);
		expect(table.stdout.trimEnd().split("\n")).toHaveLength(1 + expected.length);
		expect(table.stderr).toMatch(/^13 hits in 3 pages/m);
		expect(table.stderr).not.toMatch(/--cursor/);
	});

	it("takes a whole body with --query (a file, or - for stdin) that flags amend; ranks by --vector and --like", async () => {
		const body = path.join(dir, "query.json");
		writeFileSync(body, JSON.stringify({ filter: { tags: { contains: "award" } }, sort: "price", limit: 2 }));
		const fromFile = json<SearchResult>(await hp(["search", library, "--query", body, "--all", "--json"]));
		expect(fromFile.hits.map((h) => h.key)).toEqual(["b00", "b04", "b08", "b12", "b16", "b20"]);

		const amended = json<SearchResult>(
			await hp(["search", library, "--query", "-", "--sort", "-price", "--json"], JSON.stringify({ filter: { genre: "poetry" } })),
		);
		expect(amended.hits.map((h) => h.key)).toEqual(["b21", "b18", "b15", "b12", "b09", "b06", "b03", "b00"]);

		const near = json<SearchResult>(await hp(["search", library, "--vector", "[1, 0]", "--limit", "1", "--json"]));
		expect(near.hits.map((h) => h.key)).toEqual(["b00"]);
		const vectorFile = path.join(dir, "vector.json");
		writeFileSync(vectorFile, JSON.stringify({ value: [Math.cos(2), Math.sin(2)], k: 3 }));
		const fromVectorFile = json<SearchResult>(await hp(["search", library, "--vector", `@${vectorFile}`, "--json"]));
		expect(fromVectorFile.hits.map((h) => h.key)).toEqual(["b08", expect.stringMatching(/^b(07|09)$/), expect.stringMatching(/^b(07|09)$/)]);

		const like = json<SearchResult>(await hp(["search", library, "--like", "b08", "--k", "2", "--json"]));
		expect(like.hits.map((h) => h.key).sort()).toEqual(["b07", "b09"]);
	});

	it("exits 2 for bad usage, before asking the server", async () => {
		const cases: [string[], RegExp][] = [
			[["search"], /missing required argument 'dataset'/],
			[["search", library, "--limit", "0"], /--limit <n>.*expected an integer from 1 to 100/],
			[["search", library, "--limit", "101"], /expected an integer from 1 to 100/],
			[["search", library, "--filter", "{price: 1}"], /--filter <json>.*not JSON/],
			[["search", library, "--filter", "[1, 2]"], /--filter: a filter is a JSON object/],
			[["search", library, "--filter", `@${path.join(dir, "nope.json")}`], /cannot read .*nope\.json: ENOENT/],
			[["search", library, "--vector", '"abc"'], /--vector: a JSON array of numbers/],
			[["search", library, "--vector", "[1, 0]", "--like", "b01"], /give --vector or --like, not both/],
			[["search", library, "--k", "5"], /--k: ranks nearest neighbours/],
			[["search", library, "ocean", "--text", "poems"], /as arguments or with --text, not both/],
			[["search", library, "--query", path.join(dir, "missing.json")], /cannot read .*missing\.json/],
			[["search", library, "--query", "-"], /--query -: not JSON/],
			[["search", library, "--if-stale", "maybe"], /--if-stale.*maybe.*invalid/],
			[["search", library, "--bogus"], /unknown option '--bogus'/],
			[["history", library], /missing required argument 'key'/],
			[["history", library, "b01", "--since", "last tuesday"], /--since <time>.*expected RFC 3339/],
			[["history", library, "b01", "--limit", "1001"], /expected an integer from 1 to 1000/],
			[["history", library, "b01", "extra"], /too many arguments/],
		];
		for (const [args, message] of cases) {
			const run = await hp(args);
			expect({ args, code: run.code }).toEqual({ args, code: 2 });
			expect(run.stderr).toMatch(message);
			expect(run.stdout).toBe("");
			noStack(run);
		}
	}, 90_000);

	it("exits 1 with the problem's title and detail for an unknown dataset or a query the server refuses (the problem on stdout with --json)", async () => {
		const missing = uniqueName("cli_nope");
		const run = await hp(["search", missing, "ocean"]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(new RegExp(`^error: Not found \\(404\\): dataset "${missing}" does not exist`));
		expect(run.stdout).toBe("");
		noStack(run);
		const asJson = await hp(["search", missing, "ocean", "--json"]);
		expect(asJson.code).toBe(1);
		expect(json(asJson)).toMatchObject({ error: { status: 404, title: "Not found", detail: expect.stringContaining(missing) } });

		const refused = await hp(["search", library, "--filter", '{"author": "x", "price": {"near": 3}}']);
		expect(refused.code).toBe(1);
		expect(refused.stderr).toMatch(/^error: .*\(400\)/);
		expect(refused.stderr).toMatch(/^ {2}\/filter\/author: .*not a filter field/m);
		expect(refused.stderr).toMatch(/^ {2}\/filter\/price\/near: unknown operator "near"/m);
		noStack(refused);

		const plain = uniqueName("cli_plain");
		await sdk().datasets.apply({ name: plain, key: "k", fields: { a: "int" } });
		const notSearchable = await hp(["search", plain, "x"]);
		expect(notSearchable.code).toBe(1);
		expect(notSearchable.stderr).toMatch(/is not searchable/);
	});
});

describe("hotpath history", () => {
	const ledger = uniqueName("cli_ledger");
	const t = Date.now() - 3_600_000;
	const at = (s: number) => new Date(t + s * 1000).toISOString();

	beforeAll(async () => {
		await sdk().datasets.apply({ name: ledger, key: "account", fields: { balance: "float", owner: "string" } });
		// Sent out of order: history lists them by event_time.
		await sdk().push([
			{ dataset: ledger, key: "a1", op: "patch", value: { balance: 20 }, event_time: t + 2000, id: "e2" },
			{ dataset: ledger, key: "a1", op: "upsert", value: { balance: 10, owner: "ann" }, event_time: t + 1000, id: "e1" },
			{ dataset: ledger, key: "a1", op: "delete", event_time: t + 4000, id: "e4" },
			{ dataset: ledger, key: "a1", op: "patch", value: { balance: 30 }, event_time: t + 3000, id: "e3" },
			{ dataset: ledger, key: "a1", op: "upsert", value: { balance: 1, owner: "bob" }, event_time: t + 5000, id: "e5" },
		]);
		await eventually(async () => ((await sdk().history(ledger, "a1")).versions.length === 5 ? true : undefined));
	}, 60_000);

	it("prints a key's versions in event_time order as a table, and the page with --json", async () => {
		const run = await hp(["history", ledger, "a1"]);
		expect(run.code).toBe(0);
		const lines = run.stdout.trimEnd().split("\n");
		expect(lines[0]).toMatch(/^EVENT_TIME\s+OP\s+EVENT_ID\s+VALUE$/);
		expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
			[at(1), "upsert", "e1"],
			[at(2), "patch", "e2"],
			[at(3), "patch", "e3"],
			[at(4), "delete", "e4"],
			[at(5), "upsert", "e5"],
		]);
		expect(lines[2]).toMatch(/\{"balance":20,"owner":"ann"\}$/);
		expect(lines[4]).toMatch(/\s-$/);
		expect(run.stderr).toMatch(/^5 versions; history begins at \S+Z$/m);

		const page = json<HistoryResult>(await hp(["history", ledger, "a1", "--json"]));
		expect(page.versions.map((v) => [v.event_id, v.op, v.value])).toEqual([
			["e1", "upsert", { balance: 10, owner: "ann" }],
			["e2", "patch", { balance: 20, owner: "ann" }],
			["e3", "patch", { balance: 30, owner: "ann" }],
			["e4", "delete", null],
			["e5", "upsert", { balance: 1, owner: "bob" }],
		]);
		expect(page).toMatchObject({ next_cursor: null, history_begins_at: expect.any(String) });
	});

	it("pages with --limit and --cursor, follows every page with --all, and keeps to --since/--until", async () => {
		const first = await hp(["history", ledger, "a1", "--limit", "2", "--json"]);
		const p1 = json<HistoryResult>(first);
		expect(p1.versions.map((v) => v.event_id)).toEqual(["e1", "e2"]);
		const p2 = json<HistoryResult>(await hp(["history", ledger, "a1", "--limit", "2", "--cursor", p1.next_cursor ?? "", "--json"]));
		expect(p2.versions.map((v) => v.event_id)).toEqual(["e3", "e4"]);

		const all = json<HistoryResult>(await hp(["history", ledger, "a1", "--limit", "2", "--all", "--json"]));
		expect(all.versions.map((v) => v.event_id)).toEqual(["e1", "e2", "e3", "e4", "e5"]);
		expect(all.next_cursor).toBeNull();

		const lines = await hp(["history", ledger, "a1", "--limit", "1", "--all", "--ndjson"]);
		expect(ndjson<{ event_id: string }>(lines).map((v) => v.event_id)).toEqual(["e1", "e2", "e3", "e4", "e5"]);

		const window = await hp(["history", ledger, "a1", "--since", at(2), "--until", String(t + 4000), "--all", "--limit", "1", "--json"]);
		expect(json<HistoryResult>(window).versions.map((v) => v.event_id)).toEqual(["e2", "e3", "e4"]);

		const oneMore = await hp(["history", ledger, "a1", "--limit", "4"]);
		expect(oneMore.stderr).toMatch(/^more: --cursor \S+/m);
	});

	it("says so for a key without versions (exit 0), and exits 1 with the problem for an unknown dataset", async () => {
		const none = await hp(["history", ledger, "nobody"]);
		expect(none.code).toBe(0);
		expect(none.stdout).toBe(`no versions of "nobody" in ${ledger}\n`);

		const missing = uniqueName("cli_nope");
		const run = await hp(["history", missing, "a1"]);
		expect(run.code).toBe(1);
		expect(run.stderr).toMatch(new RegExp(`^error: Not found \\(404\\): dataset "${missing}" does not exist`));
		noStack(run);
		const asJson = await hp(["history", missing, "a1", "--json"]);
		expect(asJson.code).toBe(1);
		expect(json(asJson)).toMatchObject({ error: { status: 404, detail: expect.stringContaining("does not exist") } });
	});
});

// The queries the README and docs/CLI.md give a newcomer, on the demo dataset `npm run dev` seeds.
describe("the documented queries on the seeded demo_users", () => {
	beforeAll(async () => {
		await eventually(async () => {
			const s = await sdk().searchStatus("demo_users");
			return s.status === "ready" && s.docs >= 8 ? true : undefined;
		}, 60_000);
	}, 90_000);

	it("text with highlights, filters with a sort, users like u1, and u1's history", async () => {
		const text = json<SearchResult>(await hp(["search", "demo_users", "food", "--highlight", "--json"]));
		expect(text.hits.map((h) => h.key)).toEqual(["u4", "u8", "u3"]);
		expect(text.hits[0]?.highlights?.bio).toBe("<mark>Food</mark> blogger crossing Italy by train, one pasta at a time");

		const filtered = json<SearchResult>(
			await hp(["search", "demo_users", "--filter", '{"age": {"gte": 30}, "is_premium": true}', "--sort", "-lifetime_value", "--json"]),
		);
		expect(filtered.hits.map((h) => h.key)).toEqual(["u3", "u5", "u7", "u1"]);

		// value_tier is derived on write from lifetime_value, and a filter field.
		const tier = json<SearchResult>(await hp(["search", "demo_users", "--filter", '{"value_tier": "high"}', "--sort", "-lifetime_value", "--json"]));
		expect(tier.hits.map((h) => [h.key, h.value?.value_tier])).toEqual([
			["u3", "high"],
			["u5", "high"],
			["u7", "high"],
			["u1", "high"],
		]);

		const like = json<SearchResult>(await hp(["search", "demo_users", "--like", "u1", "--k", "3", "--json"]));
		expect(like.hits.map((h) => h.key)).toEqual(["u4", "u7", "u6"]);

		const history = json<HistoryResult>(await hp(["history", "demo_users", "u1", "--json"]));
		expect(history.versions.map((v) => [v.event_id, v.value?.lifetime_value, v.value?.value_tier])).toEqual([
			["demo:u1:1", 512, "mid"],
			["demo:u1:2", 640, "mid"],
			["demo:u1:now", 812.5, "high"],
		]);
	});
});
