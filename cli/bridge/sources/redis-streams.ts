/**
 * Redis Streams: a consumer group read with XREADGROUP, acknowledged with XACK after Hotpath's 202.
 * On start the consumer first re-reads its own pending entries (a crash left them there), and every
 * while it claims entries left pending too long (XAUTOCLAIM): other consumers', and its own that the
 * bridge released unacknowledged (a failed XACK, a reject it could not log). An entry's fields form
 * a flat JSON object of strings (a string of digits as event_time is epoch ms); an entry whose only
 * field is `json` carries a JSON document instead.
 * The id is `redis:STREAM:MS-SEQ` (SEQ zero-padded); the default event_time is the entry id's time.
 */
import { Redis } from "ioredis";
import type { RedisStreamsConfig } from "../config.ts";
import { boundedId, seq20 } from "../ids.ts";
import { decodeJson } from "./decode.ts";
import { type Delivery, type Source, type SourceSink, withoutPassword } from "./source.ts";

export interface RedisDelivery extends Delivery {
	entryId: string;
}

type Entry = [id: string, fields: string[] | null];

/** The entries of an XREADGROUP reply for one stream, whichever shape the client gives it: [[stream, entries]], [stream, entries] or {stream: entries}. */
function entriesOf(reply: unknown): Entry[] {
	if (reply === null || reply === undefined) return [];
	if (Array.isArray(reply)) {
		if (typeof reply[0] === "string") return (reply[1] as Entry[]) ?? [];
		return ((reply[0] as [string, Entry[]] | undefined)?.[1] as Entry[]) ?? [];
	}
	return (Object.values(reply as Record<string, Entry[]>)[0] as Entry[]) ?? [];
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RedisStreamsSource implements Source<RedisDelivery> {
	private readonly c: RedisStreamsConfig;
	/** Acks, claims and XINFO. */
	private redis: Redis | undefined;
	/** Blocking reads only (a blocked connection can do nothing else). */
	private reader: Redis | undefined;
	private loop: Promise<void> | undefined;
	private stopping = false;
	/**
	 * Entries handed over and not yet settled: a claim sweep must not hand them over a second time.
	 * An entry leaves when it is acked, or when the bridge releases it unacked (its XACK failed, its
	 * reject could not be logged), so that the sweep claims it again once it has been idle claim_idle_ms.
	 */
	private readonly inFlight = new Set<string>();

	constructor(config: RedisStreamsConfig) {
		this.c = config;
	}

	async start(sink: SourceSink<RedisDelivery>): Promise<void> {
		const c = this.c;
		const options = { maxRetriesPerRequest: null, lazyConnect: true, connectionName: `hotpath-bridge:${c.consumer}` };
		this.redis = new Redis(c.url, options);
		this.reader = new Redis(c.url, options);
		// The reason a connection fails comes as an 'error' event; connect() itself only says "Connection is closed."
		// Later errors are the reconnects' (ioredis retries on its own): ignored.
		let reason: Error | undefined;
		const onError = (e: Error) => {
			reason ??= e;
		};
		this.redis.on("error", onError);
		this.reader.on("error", onError);
		await Promise.all([this.redis.connect(), this.reader.connect()]).catch((e: Error) => {
			throw new Error(`Redis at ${withoutPassword(c.url)}: ${(reason ?? e).message}`);
		});
		try {
			await this.redis.call("XGROUP", ["CREATE", c.stream, c.group, c.start, "MKSTREAM"]);
		} catch (e) {
			if (!/BUSYGROUP/.test((e as Error).message)) throw e;
		}
		this.loop = this.run(sink);
	}

	private toDelivery([entryId, fields]: Entry): RedisDelivery {
		const [ms, seq] = entryId.split("-");
		const d: RedisDelivery = { id: boundedId("redis", `redis:${this.c.stream}:${ms}-${seq20(seq ?? "0")}`), entryId, time: Number(ms) };
		const f = fields ?? [];
		if (f.length === 2 && f[0] === "json") Object.assign(d, decodeJson(f[1] as string));
		else {
			const message: Record<string, string> = {};
			for (let i = 0; i + 1 < f.length; i += 2) message[f[i] as string] = f[i + 1] as string;
			d.message = message;
			d.textValues = true;
		}
		return d;
	}

	/** Hands entries over; entries deleted from the stream while pending (no fields) are just acked. */
	private async hand(entries: Entry[], sink: SourceSink<RedisDelivery>): Promise<void> {
		const gone = entries.filter(([, fields]) => fields === null).map(([id]) => id);
		if (gone.length) await this.xack(gone);
		const fresh = entries.filter(([id, fields]) => fields !== null && !this.inFlight.has(id));
		if (!fresh.length) return;
		for (const [id] of fresh) this.inFlight.add(id);
		await sink.deliver(fresh.map((e) => this.toDelivery(e)));
	}

	private async run(sink: SourceSink<RedisDelivery>): Promise<void> {
		const c = this.c;
		const reader = this.reader as Redis;
		const redis = this.redis as Redis;
		// 1. Our own pending entries: delivered to this consumer before a crash, never acked.
		let cursor = "0";
		while (!this.stopping) {
			const entries = entriesOf(
				await this.retrying(sink, () => reader.call("XREADGROUP", ["GROUP", c.group, c.consumer, "COUNT", c.count, "STREAMS", c.stream, cursor])),
			);
			if (!entries.length) break;
			await this.hand(entries, sink);
			cursor = (entries.at(-1) as Entry)[0];
		}
		// 2. New entries, with a sweep for entries other consumers left pending every claim_idle_ms / 2.
		const sweepEvery = Math.max(1000, Math.floor(c.claim_idle_ms / 2));
		let nextSweep = 0;
		while (!this.stopping) {
			if (Date.now() >= nextSweep) {
				let claimFrom = "0-0";
				do {
					const res = (await this.retrying(sink, () =>
						redis.call("XAUTOCLAIM", [c.stream, c.group, c.consumer, c.claim_idle_ms, claimFrom, "COUNT", c.count]),
					)) as [string, Entry[], string[]?] | undefined;
					if (!res) break;
					claimFrom = res[0];
					if (res[2]?.length) await this.xack(res[2]);
					if (res[1].length) await this.hand(res[1], sink);
				} while (claimFrom !== "0-0" && !this.stopping);
				nextSweep = Date.now() + sweepEvery;
			}
			if (this.stopping) break;
			const entries = entriesOf(
				await this.retrying(sink, () =>
					reader.call("XREADGROUP", ["GROUP", c.group, c.consumer, "COUNT", c.count, "BLOCK", c.block_ms, "STREAMS", c.stream, ">"]),
				),
			);
			if (entries.length) await this.hand(entries, sink);
		}
	}

	/** Runs a command until it answers; undefined once the source is stopping. */
	private async retrying<T>(sink: SourceSink<RedisDelivery>, command: () => Promise<T>): Promise<T | undefined> {
		for (;;) {
			try {
				return await command();
			} catch (e) {
				if (this.stopping) return undefined;
				const message = (e as Error).message;
				// The group was deleted (or the stream with it): make it again and go on.
				if (/NOGROUP/.test(message)) {
					sink.warn(`group "${this.c.group}" is gone; creating it again`);
					await this.redis?.call("XGROUP", ["CREATE", this.c.stream, this.c.group, this.c.start, "MKSTREAM"]).catch(() => {});
					continue;
				}
				sink.warn(`${message}; retrying in 1 s`);
				await sleep(1000);
			}
		}
	}

	private async xack(ids: string[]): Promise<void> {
		for (let i = 0; i < ids.length; i += 1000) {
			await this.redis?.call("XACK", [this.c.stream, this.c.group, ...ids.slice(i, i + 1000)]);
		}
	}

	async ack(messages: RedisDelivery[]): Promise<void> {
		const ids = messages.map((m) => m.entryId);
		await this.xack(ids);
		for (const id of ids) this.inFlight.delete(id);
	}

	release(messages: RedisDelivery[]): void {
		for (const m of messages) this.inFlight.delete(m.entryId);
	}

	async stop(): Promise<void> {
		// The loop ends after its current read: at most block_ms.
		this.stopping = true;
		await this.loop;
	}

	async close(): Promise<void> {
		this.stopping = true;
		await Promise.all([this.reader?.quit().catch(() => {}), this.redis?.quit().catch(() => {})]);
	}

	async lag(): Promise<number | null> {
		if (!this.redis) return null;
		const groups = (await this.redis.call("XINFO", ["GROUPS", this.c.stream])) as (string | number | null)[][];
		for (const g of groups) {
			const info: Record<string, string | number | null> = {};
			for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1] as string | number | null;
			if (info.name !== this.c.group) continue;
			// lag: entries not yet delivered to the group (Redis 7; null when it cannot tell), pending: delivered, not acked.
			return typeof info.lag === "number" ? info.lag + Number(info.pending) : null;
		}
		return null;
	}
}
