/**
 * Collects Server-Timing entries: one per tier a request touched. A tier asked more than once (a
 * GraphQL operation reading with two sets of freshness options, a lookup of current and past
 * values) keeps one entry, in the order it was first touched. Its duration is the time during
 * which at least one of its calls ran: calls made one after another add up, and calls made at once
 * (a lookup's aggregate groups, read in parallel) count once, so no entry says more time went to
 * a tier than the request took.
 */
interface Entry {
	name: string;
	ms: number;
	desc?: string;
	/** Calls of this entry running now, and since when one has been. */
	running: number;
	since: number;
}

export class ServerTiming {
	// A short array, searched: a request touches a handful of tiers, and the L0 fast lane makes one
	// of these per hit, where a Map costs more than the search.
	private readonly entries: Entry[] = [];

	/** Times `fn` and records it under `name`. */
	async measure<T>(name: string, fn: () => Promise<T>): Promise<T> {
		const e = this.entry(name);
		if (e.running++ === 0) e.since = performance.now();
		try {
			return await fn();
		} finally {
			if (--e.running === 0) e.ms += performance.now() - e.since;
		}
	}

	add(name: string, ms: number, desc?: string): void {
		const e = this.entry(name, desc);
		e.ms += ms;
	}

	private entry(name: string, desc?: string): Entry {
		let e = this.entries.find((x) => x.name === name);
		if (!e) {
			e = { name, ms: 0, desc, running: 0, since: 0 };
			this.entries.push(e);
		}
		return e;
	}

	/** The header; a call still running (a failed read's header, sent while others finish) counts up to now. */
	get header(): string {
		let out = "";
		for (const { name, ms, desc, running, since } of this.entries) {
			const dur = running ? ms + performance.now() - since : ms;
			out += `${out ? ", " : ""}${name};dur=${dur.toFixed(2)}${desc ? `;desc="${desc}"` : ""}`;
		}
		return out;
	}
}
