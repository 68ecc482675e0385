/** A bounded least-recently-used map: the memory bound of the isolate cache (L0). */
export class LruCache<V> {
	private readonly map = new Map<string, V>();

	constructor(readonly maxEntries: number) {}

	get size(): number {
		return this.map.size;
	}

	/** Returns the entry and marks it most recently used. */
	get(key: string): V | undefined {
		const v = this.map.get(key);
		if (v !== undefined) {
			// Map keeps insertion order; re-inserting moves the key to the young end.
			this.map.delete(key);
			this.map.set(key, v);
		}
		return v;
	}

	/** Reads without touching recency. */
	peek(key: string): V | undefined {
		return this.map.get(key);
	}

	set(key: string, value: V): void {
		this.map.delete(key);
		this.map.set(key, value);
		if (this.map.size > this.maxEntries) {
			const oldest = this.map.keys().next().value as string;
			this.map.delete(oldest);
		}
	}

	delete(key: string): void {
		this.map.delete(key);
	}

	clear(): void {
		this.map.clear();
	}
}
