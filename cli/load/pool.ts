/** Runs work items with at most `concurrency` in flight, pulling the next only when a slot frees: memory stays bounded. */

export interface PoolOptions<T> {
	concurrency: number;
	run(item: T): Promise<void>;
	/** Checked before each item is pulled: true stops pulling (in-flight work still finishes). */
	stopped?(): boolean;
}

/**
 * Resolves once every started item has finished. The first failure stops pulling; the items in
 * flight finish, then that failure is thrown.
 */
export async function runPool<T>(items: AsyncIterable<T>, opts: PoolOptions<T>): Promise<void> {
	const inflight = new Set<Promise<void>>();
	let failure: { error: unknown } | undefined;
	const iterator = items[Symbol.asyncIterator]();
	try {
		for (;;) {
			if (failure || opts.stopped?.()) break;
			const next = await iterator.next();
			if (next.done) break;
			const p: Promise<void> = opts.run(next.value).then(
				() => {
					inflight.delete(p);
				},
				(error: unknown) => {
					inflight.delete(p);
					failure ??= { error };
				},
			);
			inflight.add(p);
			while (inflight.size >= opts.concurrency) await Promise.race(inflight);
		}
	} finally {
		await Promise.all(inflight);
		await iterator.return?.();
	}
	if (failure) throw failure.error;
}
