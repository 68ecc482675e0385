/** A bounded least-recently-used map: the memory bound of the isolate cache (L0). */
interface Slot<V> {
	value: V;
	/** Insertion sequence number of the slot's current place in the map's order. */
	seq: number;
}

export class LruCache<V> {
	private readonly map = new Map<string, Slot<V>>();
	private seq = 0;
	/** A hit moves its entry to the young end only when it is older than this many insertions. */
	private readonly promoteAfter: number;

	constructor(readonly maxEntries: number) {
		// Moving an entry costs a Map delete and insert on every hit; an entry among the youngest
		// quarter is far from eviction already, so hot keys skip the move. Eviction then removes an
		// entry not read since it left the youngest quarter: LRU, coarsened by a quarter of the bound.
		this.promoteAfter = Math.floor(maxEntries / 4);
	}

	get size(): number {
		return this.map.size;
	}

	/** Returns the entry and marks it recently used. */
	get(key: string): V | undefined {
		const slot = this.map.get(key);
		if (slot === undefined) return undefined;
		if (this.seq - slot.seq > this.promoteAfter) {
			// Map keeps insertion order; re-inserting moves the key to the young end.
			this.map.delete(key);
			slot.seq = ++this.seq;
			this.map.set(key, slot);
		}
		return slot.value;
	}

	/** Reads without touching recency. */
	peek(key: string): V | undefined {
		return this.map.get(key)?.value;
	}

	set(key: string, value: V): void {
		this.map.delete(key);
		this.map.set(key, { value, seq: ++this.seq });
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
