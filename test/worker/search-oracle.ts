/**
 * Search test fixtures and a brute-force oracle: the docs a query must find, computed in the test
 * from the rows themselves (words, filters, sorts, cosine similarity), to check the index against.
 */
import { rng } from "../../scripts/lib/rng";
import { call, eventually, expectJson } from "./helpers";

export const WORDS = ["red", "blue", "green", "shoe", "hat", "coat", "wool", "cotton", "sale", "new"];
export const CATEGORIES = ["a", "b", "c", "d"];
export const DIM = 4;

/** The products' spec; `search` null for none, the full search part by default. */
export const productSpec = (search: unknown = { text: ["title", "tags"], filters: ["category", "price", "stock", "active", "tags"], vector: "emb" }) => ({
	key: "sku",
	ttl_seconds: 3600,
	fields: {
		title: "string",
		tags: "string[]",
		category: "string",
		price: "float",
		stock: "int",
		active: "bool",
		note: "string",
		emb: { type: "vector", dim: DIM },
	},
	...(search === null ? {} : { search }),
});

export interface Product {
	sku: string;
	title?: string | null;
	tags?: string[] | null;
	category?: string | null;
	price?: number | null;
	stock?: number | null;
	active?: boolean | null;
	note?: string | null;
	emb?: number[] | null;
}

/** `n` products with random words, filters and vectors; some fields left out (missing values). */
export function makeProducts(n: number, seed = 7, prefix = "p"): Product[] {
	const r = rng(seed);
	const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
	return Array.from({ length: n }, (_, i) => {
		const p: Product = { sku: `${prefix}${String(i).padStart(4, "0")}` };
		p.title = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(WORDS)).join(" ");
		if (r() < 0.8) p.tags = Array.from({ length: Math.floor(r() * 3) }, () => pick(WORDS));
		if (r() < 0.9) p.category = pick(CATEGORIES);
		if (r() < 0.9) p.price = Math.round(r() * 10_000) / 100;
		if (r() < 0.9) p.stock = Math.floor(r() * 50);
		if (r() < 0.9) p.active = r() < 0.5;
		if (r() < 0.85) p.emb = Array.from({ length: DIM }, () => Math.round((r() * 2 - 1) * 1000) / 1000);
		return p;
	});
}

// ---------------------------------------------------------------- oracle

const fold = (s: string) => s.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();

/** The words of a product's text fields, as FTS5's unicode61 tokenizer (remove_diacritics) sees them. */
export function wordsOf(p: Product): Set<string> {
	const text = [p.title ?? "", ...(p.tags ?? [])].join(" ");
	return new Set(fold(text).match(/[\p{L}\p{N}]+/gu) ?? []);
}

/** Whether a product holds every word of q. */
export const matchesText = (p: Product, q: string): boolean => {
	const want = fold(q).match(/[\p{L}\p{N}]+/gu) ?? [];
	const have = wordsOf(p);
	return want.every((w) => have.has(w));
};

type Filter = Record<string, unknown>;

function matchesOp(v: unknown, op: string, arg: unknown): boolean {
	const missing = v === undefined || v === null;
	switch (op) {
		case "eq":
			return !missing && v === arg;
		case "ne":
			return missing || v !== arg;
		case "lt":
			return !missing && (v as number) < (arg as number);
		case "lte":
			return !missing && (v as number) <= (arg as number);
		case "gt":
			return !missing && (v as number) > (arg as number);
		case "gte":
			return !missing && (v as number) >= (arg as number);
		case "in":
			return !missing && (arg as unknown[]).includes(v);
		case "contains":
			return Array.isArray(v) && v.includes(arg);
		case "exists":
			return arg ? !missing : missing;
		default:
			throw new Error(`oracle: unknown op ${op}`);
	}
}

/** Whether a product passes a filter, under the documented semantics (ne and exists:false match a missing value). */
export function matchesFilter(p: Product, f: Filter): boolean {
	return Object.entries(f).every(([name, spec]) => {
		if (name === "and") return (spec as Filter[]).every((s) => matchesFilter(p, s));
		if (name === "or") return (spec as Filter[]).some((s) => matchesFilter(p, s));
		const v = (p as unknown as Record<string, unknown>)[name];
		if (spec === null || typeof spec !== "object") return matchesOp(v, Array.isArray(v) ? "contains" : "eq", spec);
		return Object.entries(spec as Record<string, unknown>).every(([op, arg]) => matchesOp(v, op, arg));
	});
}

/** SQLite's order: null lowest, then numbers or strings (binary); ties by key. */
export function sortBy(products: Product[], keys: { field: keyof Product; desc: boolean }[]): Product[] {
	const cmp = (a: unknown, b: unknown): number => {
		const an = a === undefined || a === null;
		const bn = b === undefined || b === null;
		if (an || bn) return an && bn ? 0 : an ? -1 : 1;
		const x = typeof a === "boolean" ? Number(a) : a;
		const y = typeof b === "boolean" ? Number(b) : b;
		return (x as number) < (y as number) ? -1 : (x as number) > (y as number) ? 1 : 0;
	};
	return [...products].sort((a, b) => {
		for (const k of keys) {
			const c = cmp(a[k.field], b[k.field]);
			if (c) return k.desc ? -c : c;
		}
		return a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0;
	});
}

export function cosine(a: readonly number[], b: readonly number[]): number {
	let dot = 0;
	let na = 0;
	let nb = 0;
	for (let i = 0; i < a.length; i++) {
		dot += (a[i] as number) * (b[i] as number);
		na += (a[i] as number) ** 2;
		nb += (b[i] as number) ** 2;
	}
	return dot / Math.sqrt(na * nb);
}

/** The k nearest products by cosine similarity (those with a non-zero vector), best first. */
export function nearest(products: Product[], q: readonly number[], k: number): { sku: string; score: number }[] {
	return products
		.filter((p) => p.emb?.some((x) => x !== 0))
		.map((p) => ({ sku: p.sku, score: cosine(q, p.emb as number[]) }))
		.sort((a, b) => b.score - a.score)
		.slice(0, k);
}

// ---------------------------------------------------------------- API

export interface Hit {
	key: string;
	score: number;
	status: string;
	value: Record<string, unknown> | null;
	event_time: string | null;
	age_ms: number | null;
	highlights?: Record<string, string | string[]>;
}

export interface SearchBody {
	hits: Hit[];
	next_cursor: string | null;
	took_ms: number;
}

export interface IndexStatus {
	dataset: string;
	status: string;
	docs: number;
	indexed: number;
	total: number;
	started_at: string | null;
	finished_at: string | null;
	error?: string;
}

export const search = (ds: string, body: unknown, key?: string) => call("POST", `/v1/datasets/${ds}/search`, { json: body, key });

export async function searchOk(ds: string, body: unknown): Promise<SearchBody> {
	return expectJson<SearchBody>(await search(ds, body), 200);
}

/** Every hit of a query, page by page (each page passed to `between` before the next is asked for). */
export async function searchAll(ds: string, body: Record<string, unknown>, between?: (page: number) => Promise<void>): Promise<Hit[]> {
	const hits: Hit[] = [];
	let cursor: string | null = null;
	for (let page = 0; page < 200; page++) {
		const res: SearchBody = await searchOk(ds, cursor ? { ...body, cursor } : body);
		hits.push(...res.hits);
		cursor = res.next_cursor;
		if (!cursor) return hits;
		await between?.(page);
	}
	throw new Error("searchAll: more than 200 pages");
}

export const indexStatus = async (ds: string) => expectJson<IndexStatus>(await call("GET", `/v1/datasets/${ds}/search`), 200);

/** Waits until the dataset's index reports `ready` (its first build included: it starts about 2 s after the PUT). */
export function waitIndexReady(ds: string, timeoutMs = 30_000): Promise<IndexStatus> {
	return eventually(
		async () => {
			const s = await indexStatus(ds);
			return s.status === "ready" ? s : undefined;
		},
		{ timeoutMs, intervalMs: 200, what: `search index of ${ds} ready` },
	);
}

/** Imports products (at a fixed past time, so later events are newer) and asserts every one landed. */
export async function importProducts(ds: string, products: Product[], eventTime = Date.now() - 60_000): Promise<void> {
	for (let i = 0; i < products.length; i += 1000) {
		const rows = products.slice(i, i + 1000).map((p) => ({ ...p, _event_time: eventTime }));
		const res = await expectJson<{ imported: number; rejected: unknown[] }>(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);
		if (res.rejected.length) throw new Error(`import rejected rows: ${JSON.stringify(res.rejected.slice(0, 3))}`);
	}
}
