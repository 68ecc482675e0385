// The SDK's search and history methods against the real `npm run dev`: typed hits and versions as the
// server sends them, paging by cursor (one page, and the async iterators over every page), errors.
import { beforeAll, describe, expect, it } from "vitest";
import { eventually, uniqueName, useDevServer } from "../../../test/node/dev-server.ts";
import { type HistoryVersion, Hotpath, HotpathError, type SearchHit } from "../src/index.ts";

const server = useDevServer();
const admin = () => new Hotpath({ url: server().url, key: server().adminKey, retryBaseMs: 50 });

type Product = { title: string; tags: string[]; category: string; price: number; emb: number[] };

/** 30 products: every third is a coat, prices 5..150, the word "red" in every other title. */
const products = Array.from({ length: 30 }, (_, i) => ({
	sku: `p${String(i).padStart(2, "0")}`,
	title: `${i % 2 === 0 ? "red" : "blue"} ${i % 3 === 0 ? "wool coat" : "cotton shirt"} number ${i}`,
	tags: i % 5 === 0 ? ["sale"] : [],
	category: i % 3 === 0 ? "coats" : "shirts",
	price: 5 + i * 5,
	emb: [Math.cos(i / 5), Math.sin(i / 5), 0.1],
}));

async function errorOf(p: Promise<unknown>): Promise<HotpathError> {
	const e = await p.then(
		() => undefined,
		(err: unknown) => err,
	);
	expect(e).toBeInstanceOf(HotpathError);
	return e as HotpathError;
}

describe("@hotpath/client: search", () => {
	const shop = uniqueName("sdk_shop");

	beforeAll(async () => {
		const hp = admin();
		await hp.datasets.apply({
			name: shop,
			key: "sku",
			fields: { title: "string", tags: "string[]", category: "string", price: "float", emb: { type: "vector", dim: 3 } },
			search: { text: ["title", "tags"], filters: ["category", "price", "tags"], vector: "emb" },
		});
		const t = Date.now() - 60_000;
		expect(
			await hp.import(
				shop,
				products.map((p) => ({ ...p, _event_time: t })),
			),
		).toMatchObject({ imported: 30, rejected: [] });
		const status = await eventually(async () => {
			const s = await hp.searchStatus(shop);
			return s.status === "ready" && s.docs === products.length ? s : undefined;
		}, 60_000);
		expect(status).toMatchObject({ dataset: shop, status: "ready", docs: 30, finished_at: expect.any(String) });
	}, 90_000);

	it("answers text queries with typed hits: score, status, value, event_time, age_ms, highlights", async () => {
		const page = await admin().search<Product>(shop, { q: "red coat", highlight: true, limit: 3, fields: ["title", "price"] });
		expect(page.hits).toHaveLength(3);
		expect(page.took_ms).toBeTypeOf("number");
		expect(page.next_cursor).toEqual(expect.any(String));
		for (const hit of page.hits) {
			expect(hit).toMatchObject({ status: "present", event_time: expect.any(String), age_ms: expect.any(Number), score: expect.any(Number) });
			expect(Object.keys(hit.value ?? {}).sort()).toEqual(["price", "title"]);
			expect(hit.value?.title).toMatch(/^red wool coat/);
			expect(hit.highlights?.title).toMatch(/<mark>red<\/mark> wool <mark>coat<\/mark>/);
		}
		const scores = page.hits.map((h) => h.score);
		expect([...scores].sort((a, b) => b - a)).toEqual(scores);
	});

	it("filters and sorts; follows next_cursor page by page, and searchAll serves every hit once", async () => {
		const hp = admin();
		const query = { filter: { category: "shirts", price: { lt: 100 } }, sort: "-price", limit: 4 } as const;
		const expected = products
			.filter((p) => p.category === "shirts" && p.price < 100)
			.sort((a, b) => b.price - a.price)
			.map((p) => p.sku);
		expect(expected.length).toBeGreaterThan(8);

		const first = await hp.search(shop, query);
		expect(first.hits.map((h) => h.key)).toEqual(expected.slice(0, 4));
		expect(first.hits.every((h) => h.score === 0)).toBe(true);
		const second = await hp.search(shop, { ...query, cursor: first.next_cursor ?? undefined });
		expect(second.hits.map((h) => h.key)).toEqual(expected.slice(4, 8));

		const all: SearchHit[] = [];
		for await (const hit of hp.searchAll(shop, query)) all.push(hit);
		expect(all.map((h) => h.key)).toEqual(expected);

		// From a cursor: the rest only.
		const rest: string[] = [];
		for await (const hit of hp.searchAll(shop, { ...query, cursor: first.next_cursor ?? undefined })) rest.push(hit.key);
		expect(rest).toEqual(expected.slice(4));
	});

	it("ranks by vector (a value, or a stored record's vector) and fuses text with a vector", async () => {
		const hp = admin();
		const byValue = await hp.search(shop, { vector: { value: [1, 0, 0.1], k: 5 }, limit: 5 });
		expect(byValue.hits[0]?.key).toBe("p00");
		expect(byValue.hits.map((h) => h.score)).toEqual([...byValue.hits.map((h) => h.score)].sort((a, b) => b - a));
		const byKey = await hp.search(shop, { vector: { key: "p10", k: 3 }, limit: 3 });
		expect(byKey.hits.map((h) => h.key)).not.toContain("p10");
		// p10's two nearest neighbours are its two sides, at the same angle.
		expect(
			byKey.hits
				.slice(0, 2)
				.map((h) => h.key)
				.sort(),
		).toEqual(["p09", "p11"]);
		const hybrid = await hp.search(shop, { q: "coat", vector: { value: [1, 0, 0.1] }, limit: 5 });
		expect(hybrid.hits.length).toBe(5);
	});

	it("reports stale hits under max_staleness, and withholds their value with if_stale omit", async () => {
		const page = await admin().search(shop, { q: "coat", limit: 2, max_staleness: 1, if_stale: "omit" });
		expect(page.hits.map((h) => [h.status, h.value])).toEqual([
			["stale", null],
			["stale", null],
		]);
	});

	it("throws a HotpathError naming the bad part of a query, a missing dataset, or a dataset that is not searchable", async () => {
		const hp = admin();
		const bad = await errorOf(hp.search(shop, { filter: { nope: { eq: 1 }, price: { near: 3 } } as never }));
		expect(bad.status).toBe(400);
		expect(bad.errors.map((e) => e.pointer)).toEqual(expect.arrayContaining(["/filter/nope", "/filter/price/near"]));

		const missing = await errorOf(hp.search(uniqueName("sdk_none"), { q: "x" }));
		expect(missing.status).toBe(404);
		expect(missing.detail).toMatch(/does not exist/);

		const plain = uniqueName("sdk_plain");
		await hp.datasets.apply({ name: plain, key: "k", fields: { a: "int" } });
		const notSearchable = await errorOf(hp.search(plain, { q: "x" }));
		expect(notSearchable.status).toBe(400);
		expect(notSearchable.detail).toMatch(/not searchable/);
		expect((await hp.searchStatus(plain)).status).toBe("none");

		const iterated = await errorOf(
			(async () => {
				for await (const _ of hp.searchAll(uniqueName("sdk_none"))) break;
			})(),
		);
		expect(iterated.status).toBe(404);
	});
});

describe("@hotpath/client: history", () => {
	const ledger = uniqueName("sdk_ledger");
	const t = Date.now() - 3_600_000;

	it("pages a key's versions (history with cursor, historyAll), within since/until, each the whole state after its event", async () => {
		const hp = admin();
		await hp.datasets.apply({ name: ledger, key: "account", fields: { balance: "float", owner: "string" } });
		// Five events sent out of order; one delete, then a new upsert.
		const events = [
			{ op: "patch" as const, value: { balance: 20 }, at: 2 },
			{ op: "upsert" as const, value: { balance: 10, owner: "ann" }, at: 1 },
			{ op: "delete" as const, at: 4 },
			{ op: "patch" as const, value: { balance: 30 }, at: 3 },
			{ op: "upsert" as const, value: { balance: 1, owner: "bob" }, at: 5 },
		];
		const pushed = await hp.push(events.map((e) => ({ dataset: ledger, key: "a1", op: e.op, value: e.value, event_time: t + e.at * 1000 })));
		expect(pushed.accepted).toBe(5);

		const full = await eventually(async () => {
			const h = await hp.history<{ balance: number; owner?: string }>(ledger, "a1");
			return h.versions.length === 5 ? h : undefined;
		});
		expect(full.versions.map((v) => [v.op, v.value, v.event_time])).toEqual([
			["upsert", { balance: 10, owner: "ann" }, new Date(t + 1000).toISOString()],
			["patch", { balance: 20, owner: "ann" }, new Date(t + 2000).toISOString()],
			["patch", { balance: 30, owner: "ann" }, new Date(t + 3000).toISOString()],
			["delete", null, new Date(t + 4000).toISOString()],
			["upsert", { balance: 1, owner: "bob" }, new Date(t + 5000).toISOString()],
		]);
		expect(full.next_cursor).toBeNull();
		expect(Date.parse(full.history_begins_at)).toBeLessThan(t);
		expect(new Set(full.versions.map((v) => v.event_id)).size).toBe(5);
		expect(full.versions.map((v) => v.event_id)).toEqual([1, 0, 3, 2, 4].map((i) => pushed.ids[i]));

		const page = await hp.history(ledger, "a1", { limit: 2 });
		expect(page.versions).toHaveLength(2);
		expect(page.next_cursor).toEqual(expect.any(String));
		const next = await hp.history(ledger, "a1", { limit: 2, cursor: page.next_cursor ?? undefined });
		expect(next.versions.map((v) => v.event_time)).toEqual([new Date(t + 3000).toISOString(), new Date(t + 4000).toISOString()]);

		const all: HistoryVersion[] = [];
		for await (const v of hp.historyAll(ledger, "a1", { limit: 2 })) all.push(v);
		expect(all).toEqual(full.versions);

		const window: string[] = [];
		for await (const v of hp.historyAll(ledger, "a1", { since: new Date(t + 2000), until: t + 4000, limit: 1 })) window.push(v.op);
		expect(window).toEqual(["patch", "patch", "delete"]);
	});

	it("gives a key without events no versions, and throws for a missing dataset or a bad limit", async () => {
		const hp = admin();
		await hp.datasets.apply({ name: ledger, key: "account", fields: { balance: "float", owner: "string" } });
		expect(await hp.history(ledger, "nobody")).toMatchObject({ versions: [], next_cursor: null });
		const missing = await errorOf(hp.history(uniqueName("sdk_none"), "k"));
		expect(missing.status).toBe(404);
		const bad = await errorOf(hp.history(ledger, "a1", { limit: 5000 }));
		expect(bad.status).toBe(400);
		expect(bad.detail).toMatch(/limit/);
	});
});
