/**
 * For sources whose acknowledgement is a position (a Kafka offset, a PostgreSQL LSN): positions are
 * handed over in order, acked in any order, and the source may only be told "everything up to here"
 * for the longest acked prefix.
 */
export class OrderedAcks<P> {
	/** Outstanding positions from `head` on; items before `head` are acked and wait to be dropped. */
	private items: { position: P; done: boolean }[] = [];
	private head = 0;
	/** Absolute number of the first element of `items` (items dropped so far). */
	private dropped = 0;
	private readonly index = new Map<P, number>();

	/** Handed over, in order. */
	add(position: P): void {
		this.index.set(position, this.dropped + this.items.length);
		this.items.push({ position, done: false });
	}

	/** Marks positions acked; returns the last position of the acked prefix when it moved, else undefined. */
	ack(positions: Iterable<P>): P | undefined {
		for (const p of positions) {
			const at = this.index.get(p);
			const item = at === undefined ? undefined : this.items[at - this.dropped];
			if (item) item.done = true;
		}
		let last: P | undefined;
		for (let item = this.items[this.head]; item?.done; item = this.items[this.head]) {
			this.index.delete(item.position);
			last = item.position;
			this.head++;
		}
		// Drop the acked prefix now and then, so memory follows what is outstanding.
		if (this.head > 1024 && this.head * 2 > this.items.length) {
			this.items = this.items.slice(this.head);
			this.dropped += this.head;
			this.head = 0;
		}
		return last;
	}

	/** Positions handed over and not yet covered by the acked prefix. */
	get outstanding(): number {
		return this.items.length - this.head;
	}
}
