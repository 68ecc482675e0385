/**
 * One source's way to Hotpath: map each message, batch the events (by count, bytes and time), POST
 * them through the shared in-flight limit, and acknowledge each message to its source only once
 * Hotpath has answered for it. A source is held back (its `deliver` does not resolve) while too many
 * of its messages are on their way.
 */
import type { Mapper } from "./mapping.ts";
import type { RejectEntry, RejectLog } from "./rejects.ts";
import type { Delivery, Source, SourceSink } from "./sources/source.ts";
import { FatalTargetError, type HotpathTarget } from "./target.ts";

/** Below Hotpath's 5 MiB body limit, with room for the brackets and commas. */
const MAX_BODY_BYTES = 4.5 * 1024 * 1024;

/** Per-source counters, as /metrics reports them. */
export interface SourceStats {
	/** Messages the source handed over. */
	received: number;
	/** Events Hotpath accepted (202). */
	sent: number;
	/** Messages acknowledged to the source (sent or rejected). */
	acked: number;
	/** Messages that could not be mapped or that Hotpath refused, logged (or dead-lettered) and acked. */
	rejected: number;
	/** Messages received and not yet acknowledged. */
	pending: number;
	/** Source-specific backlog (see Source.lag), null when unknown. */
	lag: number | null;
}

/** A FIFO counting semaphore: POSTs in flight over all sources. */
export class Slots {
	private free: number;
	private readonly queue: (() => void)[] = [];
	constructor(n: number) {
		this.free = n;
	}
	async acquire(): Promise<() => void> {
		if (this.free > 0) this.free--;
		else await new Promise<void>((resolve) => this.queue.push(resolve));
		let released = false;
		return () => {
			if (released) return;
			released = true;
			const next = this.queue.shift();
			if (next) next();
			else this.free++;
		};
	}
}

export interface PipelineOptions<D extends Delivery> {
	name: string;
	source: Source<D>;
	mapper: Mapper;
	target: HotpathTarget;
	slots: Slots;
	rejectLog: RejectLog;
	maxEvents: number;
	maxWaitMs: number;
	maxPending: number;
	/** The bridge cannot go on (a config error from Hotpath, a source that failed for good). */
	onFatal: (error: Error) => void;
	log: (message: string) => void;
}

interface Batch<D> {
	events: string[];
	deliveries: D[];
	bytes: number;
}

/**
 * Hotpath refuses events to a dataset that does not exist, or that the key may not write, one by one
 * (src/ingest/events.ts). Those are config errors, not bad messages: the bridge stops rather than
 * throwing every message away.
 */
const CONFIG_REJECTION = /^dataset ".*" does not exist$|^this key may not write to dataset/;

export class SourcePipeline<D extends Delivery> {
	readonly name: string;
	readonly stats: SourceStats = { received: 0, sent: 0, acked: 0, rejected: 0, pending: 0, lag: null };
	readonly sink: SourceSink<D>;
	private readonly o: PipelineOptions<D>;
	private batch: Batch<D> = { events: [], deliveries: [], bytes: 0 };
	private timer: NodeJS.Timeout | undefined;
	private readonly inFlight = new Set<Promise<void>>();
	private readonly roomWaiters: (() => void)[] = [];
	private stopping = false;
	private failed = false;

	constructor(o: PipelineOptions<D>) {
		this.o = o;
		this.name = o.name;
		this.sink = {
			deliver: (messages) => this.deliver(messages),
			fail: (error) => this.fail(error),
			warn: (message) => o.log(`${o.name}: ${message}`),
		};
	}

	private async deliver(messages: D[]): Promise<void> {
		if (this.failed) return new Promise<void>(() => {});
		this.stats.received += messages.length;
		this.stats.pending += messages.length;
		const unmappable: { delivery: D; entry: RejectEntry }[] = [];
		for (const d of messages) {
			const event = this.o.mapper.map(d);
			if (typeof event === "string") {
				unmappable.push({ delivery: d, entry: { id: d.id, error: event, by: "bridge", message: d.message, raw: d.raw } });
				continue;
			}
			this.add(JSON.stringify(event), d);
		}
		if (unmappable.length) await this.reject(unmappable);
		// Back-pressure: the source pulls again only when this resolves.
		while (this.stats.pending >= this.o.maxPending && !this.stopping && !this.failed) {
			await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
		}
	}

	private add(json: string, delivery: D): void {
		if (this.batch.events.length && this.batch.bytes + json.length + 1 > MAX_BODY_BYTES) this.flush();
		this.batch.events.push(json);
		this.batch.deliveries.push(delivery);
		this.batch.bytes += json.length + 1;
		if (this.batch.events.length >= this.o.maxEvents) this.flush();
		else this.timer ??= setTimeout(() => this.flush(), this.o.maxWaitMs);
	}

	/** Sends what is batched now, without waiting for it. */
	flush(): void {
		clearTimeout(this.timer);
		this.timer = undefined;
		if (!this.batch.events.length) return;
		const batch = this.batch;
		this.batch = { events: [], deliveries: [], bytes: 0 };
		const sending = this.send(batch);
		this.inFlight.add(sending);
		void sending.finally(() => this.inFlight.delete(sending));
	}

	private async send(batch: Batch<D>): Promise<void> {
		const release = await this.o.slots.acquire();
		let result: Awaited<ReturnType<HotpathTarget["post"]>>;
		try {
			result = await this.o.target.post(batch.events);
		} catch (e) {
			// Nothing of this batch is acknowledged: the source delivers it again after the fix.
			return this.fail(e instanceof Error ? e : new Error(String(e)));
		} finally {
			release();
		}
		this.stats.sent += result.accepted;
		const refused = new Set<number>();
		const rejected: { delivery: D; entry: RejectEntry }[] = [];
		for (const r of result.rejected) {
			const delivery = batch.deliveries[r.index];
			if (!delivery || refused.has(r.index)) continue;
			if (CONFIG_REJECTION.test(r.error)) return this.fail(new FatalTargetError(`Hotpath refused events of ${this.name}: ${r.error}`));
			refused.add(r.index);
			rejected.push({ delivery, entry: { id: delivery.id, error: r.error, by: "hotpath", message: JSON.parse(batch.events[r.index] as string) } });
		}
		if (rejected.length) await this.reject(rejected);
		const accepted = refused.size ? batch.deliveries.filter((_, i) => !refused.has(i)) : batch.deliveries;
		await this.ack(accepted);
	}

	/** Rejected for good: to the source's dead-letter mechanism when it has one, else logged; then acked either way. */
	private async reject(list: { delivery: D; entry: RejectEntry }[]): Promise<void> {
		this.stats.rejected += list.length;
		const deliveries = list.map((r) => r.delivery);
		try {
			if (
				this.o.source.deadLetter &&
				(await this.o.source.deadLetter(
					deliveries,
					list.map((r) => r.entry.error),
				))
			) {
				this.settled(deliveries.length);
				return;
			}
			await this.o.rejectLog.write(list.map((r) => r.entry));
		} catch (e) {
			// Not acked: the source delivers them again, and they are rejected again.
			this.o.log(`${this.name}: cannot record ${list.length} rejected message(s), leaving them unacknowledged: ${(e as Error).message}`);
			this.unacked(deliveries);
			return;
		}
		await this.ack(deliveries);
	}

	private async ack(deliveries: D[]): Promise<void> {
		if (!deliveries.length) return;
		try {
			await this.o.source.ack(deliveries);
			this.settled(deliveries.length);
		} catch (e) {
			// The source redelivers them; their ids make that harmless.
			this.o.log(`${this.name}: ack of ${deliveries.length} message(s) failed (they will be redelivered): ${(e as Error).message}`);
			this.unacked(deliveries);
		}
	}

	/** Settled without an ack: the source is told, so that it delivers them again. */
	private unacked(deliveries: D[]): void {
		this.settled(0, deliveries.length);
		try {
			this.o.source.release?.(deliveries);
		} catch (e) {
			this.o.log(`${this.name}: cannot release ${deliveries.length} message(s) for redelivery: ${(e as Error).message}`);
		}
	}

	private settled(acked: number, unacked = 0): void {
		this.stats.acked += acked;
		this.stats.pending -= acked + unacked;
		while (this.roomWaiters.length && this.stats.pending < this.o.maxPending) this.roomWaiters.shift()?.();
	}

	private fail(error: Error): void {
		if (this.failed) return;
		this.failed = true;
		clearTimeout(this.timer);
		this.o.onFatal(error);
	}

	/** Stops holding the source back: it is being stopped and pulls no more, so what it has in hand may all go through. */
	beginStop(): void {
		this.stopping = true;
		for (const wake of this.roomWaiters.splice(0)) wake();
	}

	/** Sends what is batched and waits until every batch has its answer and its acks. */
	async drain(): Promise<void> {
		this.flush();
		while (this.inFlight.size) {
			await Promise.all(this.inFlight);
			this.flush();
		}
	}
}
