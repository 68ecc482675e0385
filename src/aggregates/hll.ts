/**
 * HyperLogLog for `distinct` aggregates: 4,096 registers (p = 12), a standard error of about
 * 1.6%, estimated without bias from small sets to large. Registers merge by max, so a value seen twice (a
 * redelivered fact) changes nothing, and tiles merge in SQL with max().
 */

export const HLL_P = 12;
export const HLL_REGISTERS = 1 << HLL_P;

/** MurmurHash3 (x86, 32-bit) of a string's UTF-16 code units. */
function murmur3(s: string, seed: number): number {
	let h = seed >>> 0;
	const c1 = 0xcc9e2d51;
	const c2 = 0x1b873593;
	let i = 0;
	for (; i + 1 < s.length; i += 2) {
		let k = (s.charCodeAt(i) & 0xffff) | ((s.charCodeAt(i + 1) & 0xffff) << 16);
		k = Math.imul(k, c1);
		k = (k << 15) | (k >>> 17);
		k = Math.imul(k, c2);
		h ^= k;
		h = (h << 13) | (h >>> 19);
		h = (Math.imul(h, 5) + 0xe6546b64) | 0;
	}
	if (i < s.length) {
		let k = s.charCodeAt(i) & 0xffff;
		k = Math.imul(k, c1);
		k = (k << 15) | (k >>> 17);
		k = Math.imul(k, c2);
		h ^= k;
	}
	h ^= s.length;
	h ^= h >>> 16;
	h = Math.imul(h, 0x85ebca6b);
	h ^= h >>> 13;
	h = Math.imul(h, 0xc2b2ae35);
	h ^= h >>> 16;
	return h >>> 0;
}

/** The register a value falls in and its rank (1 + leading zeros of the remaining hash bits, at most 53). */
export function hllRegister(value: unknown): { idx: number; rank: number } {
	const text = JSON.stringify(value) ?? "null";
	const h1 = murmur3(text, 0x9747b28c);
	const h2 = murmur3(text, 0x5bd1e995);
	const idx = h1 >>> (32 - HLL_P);
	// The other 20 bits of h1, then 32 of h2: 52 bits whose leading zeros give the rank.
	const rest1 = (h1 << HLL_P) >>> 0;
	let rank = 1;
	if (rest1 !== 0) rank += Math.clz32(rest1);
	else rank += 32 - HLL_P + Math.clz32(h2);
	return { idx, rank };
}

/** The largest rank: 1 + the 52 bits after the register index all zero. */
const MAX_RANK = 53;

/** σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k-1), the correction for empty registers (Ertl 2017). */
function sigma(x: number): number {
	if (x === 1) return Number.POSITIVE_INFINITY;
	let y = 1;
	let z = x;
	for (;;) {
		x *= x;
		const before = z;
		z += x * y;
		y += y;
		if (z === before) return z;
	}
}

/** τ(x) = (1 - x - Σ_{k≥1} (1 - x^(2^-k))^2 2^-k) / 3, the correction for saturated registers (Ertl 2017). */
function tau(x: number): number {
	if (x === 0 || x === 1) return 0;
	let y = 1;
	let z = 1 - x;
	for (;;) {
		x = Math.sqrt(x);
		const before = z;
		y *= 0.5;
		z -= (1 - x) ** 2 * y;
		if (z === before) return z / 3;
	}
}

/**
 * The estimated number of distinct values from the registers that are set (idx -> rank): Ertl's
 * improved raw estimator ("New cardinality estimation algorithms for HyperLogLog sketches", 2017),
 * unbiased over the whole range. The classic estimator switched from linear counting to the raw
 * one at 2.5 × 4,096 registers, where the raw one overestimates: about +1.7% on average around
 * 10,000 distinct values, most of the 2% the design allows.
 */
export function hllEstimate(registers: ReadonlyMap<number, number>): number {
	const m = HLL_REGISTERS;
	const counts = new Float64Array(MAX_RANK + 1);
	counts[0] = m - registers.size;
	for (const r of registers.values()) {
		const k = Math.min(Math.max(r, 0), MAX_RANK);
		counts[k] = (counts[k] ?? 0) + 1;
	}
	let z = m * tau(1 - (counts[MAX_RANK] ?? 0) / m);
	for (let k = MAX_RANK - 1; k >= 1; k--) z = 0.5 * (z + (counts[k] ?? 0));
	z += m * sigma((counts[0] ?? 0) / m);
	return Math.round((m * m) / (2 * Math.LN2) / z);
}
