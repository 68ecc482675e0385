/**
 * Keeps a bulk load's heap near its live size. V8 grows the heap with the allocation rate, not with
 * what is alive: a loader that parses and encodes hundreds of MB per second lets it reach several
 * times its live set (50-70 MB here) before collecting. A full collection whenever the used heap
 * passes a bound keeps peak memory flat whatever the file's size (under 300 MiB for a million
 * rows: figures in docs/CLI.md), at the cost of a few tens of milliseconds per collection.
 */
import v8 from "node:v8";
import vm from "node:vm";

let collect: (() => void) | undefined;

function collector(): () => void {
	if (!collect) {
		// The flag exposes gc() to contexts created from now on; the function works in this one too.
		v8.setFlagsFromString("--expose-gc");
		collect = vm.runInNewContext("gc") as () => void;
	}
	return collect;
}

/** Collects when the used heap is above `bound` bytes. */
export function boundHeap(bound: number): void {
	if (v8.getHeapStatistics().used_heap_size > bound) collector()();
}

/** Passes batches through, bounding the heap before each: checked every read, it cannot overshoot by much. */
export async function* heapBounded<T>(batches: AsyncIterable<T>, bound: number): AsyncGenerator<T> {
	for await (const batch of batches) {
		boundHeap(bound);
		yield batch;
	}
}
