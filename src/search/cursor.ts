/**
 * Search cursors: a snapshot of the first page's ranking. The first query ranks up to MAX_DEPTH
 * docs; the cursor carries the ids and scores of those not served yet, with the index generation
 * and a hash of the query. Later pages serve from that list, so whatever is written meanwhile
 * (BM25 statistics shift, sort values change, docs come and go) no doc that exists throughout is
 * served twice or skipped; a doc deleted meanwhile is left out, one created meanwhile is not added.
 *
 * Binary, then base64url: a version byte, the generation and count as varints, the query hash
 * (u32), the ids as varints and the scores as float32.
 */
import { HotpathError } from "../errors";

/** Hits one query can page through, all pages together. */
export const MAX_DEPTH = 1000;
const VERSION = 1;

export interface Ranked {
	id: number;
	score: number;
}

export interface CursorState {
	gen: number;
	hash: number;
	rest: Ranked[];
}

/** FNV-1a (32 bits) of a string: binds a cursor to the query it was made for. */
export function queryHash(text: string): number {
	let h = 0x811c9dc5;
	for (let i = 0; i < text.length; i++) {
		h ^= text.charCodeAt(i);
		h = Math.imul(h, 0x01000193) >>> 0;
	}
	return h >>> 0;
}

function pushVarint(out: number[], n: number): void {
	let v = n;
	while (v >= 0x80) {
		out.push((v & 0x7f) | 0x80);
		v = Math.floor(v / 128);
	}
	out.push(v);
}

export function encodeSearchCursor(state: CursorState): string {
	const head: number[] = [VERSION];
	pushVarint(head, state.gen);
	pushVarint(head, state.rest.length);
	const bytes = new Uint8Array(head.length + 4 + state.rest.length * 9);
	bytes.set(head);
	const view = new DataView(bytes.buffer);
	let at = head.length;
	view.setUint32(at, state.hash);
	at += 4;
	const ids: number[] = [];
	for (const r of state.rest) pushVarint(ids, r.id);
	bytes.set(ids, at);
	at += ids.length;
	for (const r of state.rest) {
		view.setFloat32(at, r.score);
		at += 4;
	}
	let bin = "";
	for (const b of bytes.subarray(0, at)) bin += String.fromCharCode(b);
	return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

const bad = (why: string) =>
	new HotpathError("bad_request", `cursor ${why}: pass next_cursor from the previous page as is, with the same query`, {
		errors: [{ pointer: "/cursor", detail: why }],
	});

/** Reads a cursor back; anything that is not one this API gave out is a 400. */
export function decodeSearchCursor(cursor: string): CursorState {
	let bytes: Uint8Array;
	try {
		const bin = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
		bytes = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
	} catch {
		throw bad("is not base64url");
	}
	let at = 0;
	const varint = (): number => {
		let n = 0;
		let scale = 1;
		for (let i = 0; i < 8; i++) {
			if (at >= bytes.length) throw bad("is cut short");
			const b = bytes[at++] as number;
			n += (b & 0x7f) * scale;
			if (b < 0x80) return n;
			scale *= 128;
		}
		throw bad("is malformed");
	};
	if (bytes[at++] !== VERSION) throw bad("is not a search cursor");
	const gen = varint();
	const count = varint();
	if (count > MAX_DEPTH) throw bad("is malformed");
	if (at + 4 > bytes.length) throw bad("is cut short");
	const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	const hash = view.getUint32(at);
	at += 4;
	const ids: number[] = [];
	for (let i = 0; i < count; i++) ids.push(varint());
	if (at + count * 4 !== bytes.length) throw bad("is malformed");
	const rest: Ranked[] = ids.map((id, i) => ({ id, score: view.getFloat32(at + i * 4) }));
	if (rest.some((r) => !Number.isFinite(r.score))) throw bad("is malformed");
	return { gen, hash, rest };
}
