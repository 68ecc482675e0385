/**
 * Collects Server-Timing entries: one per tier a request touched. A tier asked more than once (a
 * GraphQL operation reading with two sets of freshness options, a lookup of current and past
 * values) keeps one entry, the sum of its calls' times, in the order it was first touched.
 */
export class ServerTiming {
	// A short array, searched: a request touches a handful of tiers, and the L0 fast lane makes one
	// of these per hit, where a Map costs more than the search.
	private readonly entries: { name: string; ms: number; desc?: string }[] = [];

	/** Times `fn` and records it under `name`. */
	async measure<T>(name: string, fn: () => Promise<T>): Promise<T> {
		const start = performance.now();
		try {
			return await fn();
		} finally {
			this.add(name, performance.now() - start);
		}
	}

	add(name: string, ms: number, desc?: string): void {
		const e = this.entries.find((x) => x.name === name);
		if (e) e.ms += ms;
		else this.entries.push({ name, ms, desc });
	}

	get header(): string {
		let out = "";
		for (const { name, ms, desc } of this.entries) out += `${out ? ", " : ""}${name};dur=${ms.toFixed(2)}${desc ? `;desc="${desc}"` : ""}`;
		return out;
	}
}
