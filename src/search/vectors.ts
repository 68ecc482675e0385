/**
 * Exact cosine k-nearest neighbours by brute force, over the vectors of one index generation held
 * in the isolate's memory. D1 hands blobs over as arrays of numbers (reading 20,000 64-float blobs
 * per query takes about a second locally), so each isolate loads a generation's vectors once (as
 * hex) and then, before every query, reads only the docs written since (`seq`, the docs table's
 * write sequence): a query sees every index write committed before it.
 *
 * The stated limit: at most MAX_VECTORS vectors and MAX_DATASET_FLOATS floats per dataset (over it,
 * vector search is refused with a 409 saying so); at most MAX_CACHED_FLOATS floats per isolate
 * across datasets (least recently used generations are dropped, and reloaded when asked again).
 * Vectorize could stand behind the same interface in production.
 */
import { HotpathError } from "../errors";
import { hexToFloats, type IndexTables } from "./layout";

export const MAX_VECTORS = 50_000;
/** 16 MiB of Float32 per dataset: 50,000 vectors of 80 dims, or 5,461 of 768. */
export const MAX_DATASET_FLOATS = 4 * 1024 * 1024;
/** 32 MiB of Float32 per isolate, across datasets. */
export const MAX_CACHED_FLOATS = 8 * 1024 * 1024;
/**
 * Hex characters per round trip while loading or catching up: the vectors come back as one
 * group_concat string (one row is far cheaper for D1 to hand over than thousands), kept under D1's
 * 2,000,000 bytes per string.
 */
const LOAD_CHARS = 1_800_000;

/** The vectors of one generation: normalised (cosine is then a dot product), in dense slots. */
export class VectorSet {
	ids: Int32Array;
	data: Float32Array;
	readonly slots = new Map<number, number>();
	count = 0;
	/** The last (seq, id) of the docs applied: the next delta reads after it. */
	cursor: [number, number] = [0, 0];
	lastUsed = 0;

	constructor(readonly dim: number) {
		this.ids = new Int32Array(64);
		this.data = new Float32Array(64 * dim);
	}

	get floats(): number {
		return this.data.length;
	}

	/** Sets or removes (hex null or malformed, or a zero vector) the vector of doc `id`. */
	put(id: number, hex: string | null): void {
		if (hex === null) {
			this.remove(id);
			return;
		}
		let slot = this.slots.get(id);
		const isNew = slot === undefined;
		if (slot === undefined) {
			if (this.count === this.ids.length) this.grow();
			slot = this.count;
		}
		const at = slot * this.dim;
		if (!hexToFloats(hex, this.dim, this.data, at) || !normalise(this.data, at, this.dim)) {
			if (!isNew) this.remove(id);
			return;
		}
		if (isNew) {
			this.ids[slot] = id;
			this.slots.set(id, slot);
			this.count++;
		}
	}

	remove(id: number): void {
		const slot = this.slots.get(id);
		if (slot === undefined) return;
		const last = this.count - 1;
		if (slot !== last) {
			const lastId = this.ids[last] as number;
			this.data.copyWithin(slot * this.dim, last * this.dim, (last + 1) * this.dim);
			this.ids[slot] = lastId;
			this.slots.set(lastId, slot);
		}
		this.slots.delete(id);
		this.count--;
	}

	/** The stored (normalised) vector of doc `id`, or null. */
	vectorOf(id: number): Float32Array | null {
		const slot = this.slots.get(id);
		return slot === undefined ? null : this.data.slice(slot * this.dim, (slot + 1) * this.dim);
	}

	/**
	 * The k docs most similar to `query` (normalised), best first, and every doc that ties with the
	 * k-th (so more than k when they tie there): which of those make the cut is decided by key, which
	 * only the index knows (src/search/search.ts). Only ids in `allow` when given, never `exclude`.
	 */
	nearest(query: Float32Array, k: number, allow: Set<number> | null, exclude: number | null): { id: number; score: number }[] {
		const heap = new TopK(k);
		const { dim, data, ids } = this;
		for (let s = 0; s < this.count; s++) {
			const id = ids[s] as number;
			if (id === exclude || (allow && !allow.has(id))) continue;
			let dot = 0;
			const at = s * dim;
			for (let j = 0; j < dim; j++) dot += (data[at + j] as number) * (query[j] as number);
			// At float32 precision, as the vectors are stored and cursors carry scores: vectors of one
			// direction tie exactly rather than by the rounding of their sums.
			heap.offer(id, Math.fround(dot));
		}
		return heap.sorted();
	}

	private grow(): void {
		const ids = new Int32Array(this.ids.length * 2);
		ids.set(this.ids);
		const data = new Float32Array(this.data.length * 2);
		data.set(this.data);
		this.ids = ids;
		this.data = data;
	}
}

/** Scales the `dim` floats at `at` to unit length; false for a zero (or non-finite) vector. */
export function normalise(v: Float32Array, at: number, dim: number): boolean {
	let sum = 0;
	for (let j = 0; j < dim; j++) sum += (v[at + j] as number) ** 2;
	const norm = Math.sqrt(sum);
	if (!(norm > 0) || !Number.isFinite(norm)) return false;
	for (let j = 0; j < dim; j++) v[at + j] = (v[at + j] as number) / norm;
	return true;
}

/** A bounded min-heap keeping the k best (score desc, then id asc), and the docs that tie with the k-th. */
class TopK {
	private readonly ids: number[] = [];
	private readonly scores: number[] = [];
	/** Docs left out of the heap whose score equals its worst (the k-th) score. */
	private ties: number[] = [];
	constructor(private readonly k: number) {}

	/** Whether (a) ranks below (b): lower score, or same score and larger id. */
	private worse(i: number, j: number): boolean {
		const a = this.scores[i] as number;
		const b = this.scores[j] as number;
		return a < b || (a === b && (this.ids[i] as number) > (this.ids[j] as number));
	}

	offer(id: number, score: number): void {
		if (this.ids.length < this.k) {
			this.ids.push(id);
			this.scores.push(score);
			this.up(this.ids.length - 1);
			return;
		}
		const top = this.scores[0] as number;
		if (score < top) return;
		if (score === top) {
			this.ties.push(id);
			return;
		}
		const out = this.ids[0] as number;
		this.ids[0] = id;
		this.scores[0] = score;
		this.down(0);
		// The doc pushed out still ties with the k-th if the new k-th has its score; else no tie is left.
		if (this.scores[0] === top) this.ties.push(out);
		else this.ties = [];
	}

	sorted(): { id: number; score: number }[] {
		const top = this.scores[0] as number;
		return [...this.ids.map((id, i) => ({ id, score: this.scores[i] as number })), ...this.ties.map((id) => ({ id, score: top }))].sort(
			(a, b) => b.score - a.score || a.id - b.id,
		);
	}

	private swap(i: number, j: number): void {
		[this.ids[i], this.ids[j]] = [this.ids[j] as number, this.ids[i] as number];
		[this.scores[i], this.scores[j]] = [this.scores[j] as number, this.scores[i] as number];
	}

	private up(i: number): void {
		while (i > 0) {
			const p = (i - 1) >> 1;
			if (!this.worse(i, p)) return;
			this.swap(i, p);
			i = p;
		}
	}

	private down(i: number): void {
		const n = this.ids.length;
		for (;;) {
			const l = 2 * i + 1;
			const r = l + 1;
			let m = i;
			if (l < n && this.worse(l, m)) m = l;
			if (r < n && this.worse(r, m)) m = r;
			if (m === i) return;
			this.swap(i, m);
			i = m;
		}
	}
}

/** Vector sets by `dataset:generation`, least recently used first out. */
const sets = new Map<string, VectorSet>();

const tooMany = (dataset: string, n: number, dim: number) =>
	new HotpathError(
		"conflict",
		`vector search in "${dataset}" is exact (brute force) and limited to ${MAX_VECTORS} vectors and ${MAX_DATASET_FLOATS} floats (vectors x dim) per dataset; it has ${n} vectors of ${dim} dims`,
	);

interface DeltaRow {
	ids: string | null;
	seqs: string | null;
	vecs: string | null;
	n: number;
}

/**
 * The vector set of a generation, brought up to the docs table's state: loaded whole the first
 * time, then by the docs written since the last call. Throws a conflict past the size limit.
 */
export async function vectorsOf(db: D1Database, dataset: string, gen: number, tables: IndexTables, dim: number): Promise<VectorSet> {
	const id = `${dataset}:${gen}`;
	let set = sets.get(id);
	if (!set) {
		for (const [other] of sets) if (other.startsWith(`${dataset}:`)) sets.delete(other); // an older generation of the dataset
		const row = await db.prepare(`SELECT count(*) AS n FROM ${tables.vecs} WHERE vec IS NOT NULL`).first<{ n: number }>();
		const n = row?.n ?? 0;
		if (n > MAX_VECTORS || n * dim > MAX_DATASET_FLOATS) throw tooMany(dataset, n, dim);
		set = sets.get(id) ?? new VectorSet(dim);
		sets.set(id, set);
	}
	// Most recently used last.
	sets.delete(id);
	sets.set(id, set);
	set.lastUsed = Date.now();
	const rows = Math.max(1, Math.floor(LOAD_CHARS / (dim * 8 + 1)));
	for (;;) {
		const [seq, last] = set.cursor;
		// In (seq, id) order: the aggregate reads the ordered subquery in order.
		const delta = await db
			.prepare(
				`SELECT group_concat(id) AS ids, group_concat(seq) AS seqs, group_concat(coalesce(hex(vec), '')) AS vecs, count(*) AS n
FROM (SELECT id, seq, vec FROM ${tables.vecs} WHERE (seq, id) > (?1, ?2) ORDER BY seq, id LIMIT ?3)`,
			)
			.bind(seq, last, rows)
			.first<DeltaRow>();
		// Another request of this isolate applied a delta meanwhile: read again from where it got to, so deltas apply in order.
		if (set.cursor[0] !== seq || set.cursor[1] !== last) continue;
		const n = delta?.n ?? 0;
		if (n === 0) break;
		const ids = (delta?.ids ?? "").split(",");
		const seqs = (delta?.seqs ?? "").split(",");
		const vecs = (delta?.vecs ?? "").split(",");
		for (let i = 0; i < n; i++) set.put(Number(ids[i]), vecs[i] || null);
		set.cursor = [Number(seqs[n - 1]), Number(ids[n - 1])];
		if (set.count > MAX_VECTORS || set.count * dim > MAX_DATASET_FLOATS) {
			sets.delete(id);
			throw tooMany(dataset, set.count, dim);
		}
		if (n < rows) break;
	}
	evict(id);
	return set;
}

/** Drops least recently used sets (never `keep`) while the isolate holds more than MAX_CACHED_FLOATS. */
function evict(keep: string): void {
	let total = 0;
	for (const s of sets.values()) total += s.floats;
	for (const [id, s] of sets) {
		if (total <= MAX_CACHED_FLOATS) return;
		if (id === keep) continue;
		sets.delete(id);
		total -= s.floats;
	}
}

/** Forgets every cached set of a dataset (its index was dropped or rebuilt). */
export function forgetVectors(dataset: string): void {
	for (const id of [...sets.keys()]) if (id.startsWith(`${dataset}:`)) sets.delete(id);
}
