/**
 * Kafka (kafkajs): a consumer group with auto-commit off. Offsets are committed per partition, in
 * order, only for the longest prefix of messages Hotpath has answered for (offset + 1, Kafka's "next
 * to read"). The id is `kafka:TOPIC:PARTITION:OFFSET` (offset zero-padded); the default event_time
 * is the record's timestamp. A tombstone (null value) with a key becomes a delete of that key.
 * Built and unit-tested against a fake consumer only: no broker could be reached where it was written.
 */
import { type Consumer, Kafka, type KafkaMessage, logLevel } from "kafkajs";
import type { KafkaConfig } from "../config.ts";
import { boundedId, seq20 } from "../ids.ts";
import { OrderedAcks } from "../ordered-acks.ts";
import { decodeJson } from "./decode.ts";
import type { Delivery, Source, SourceSink } from "./source.ts";

export interface KafkaDelivery extends Delivery {
	partition: number;
	offset: bigint;
	/** Which tracker of the partition it belongs to (a rewind after a rebalance starts a new one). */
	tracker: OrderedAcks<bigint>;
}

/** The part of a kafkajs consumer the source uses (a fake in tests). */
export type KafkaConsumerLike = Pick<Consumer, "connect" | "subscribe" | "run" | "commitOffsets" | "pause" | "disconnect">;

export class KafkaSource implements Source<KafkaDelivery> {
	private readonly c: KafkaConfig;
	private readonly consumer: KafkaConsumerLike;
	private readonly trackers = new Map<number, { acks: OrderedAcks<bigint>; last: bigint }>();
	private readonly highWatermarks = new Map<number, bigint>();
	/** Next offset to read per partition, as committed. */
	private readonly committed = new Map<number, bigint>();
	/** Commits go out one after another, so a later one never lands before an earlier one. */
	private commits: Promise<void> = Promise.resolve();
	private stopping = false;
	private sink: SourceSink<KafkaDelivery> | undefined;

	constructor(config: KafkaConfig, consumer?: KafkaConsumerLike) {
		this.c = config;
		this.consumer =
			consumer ?? new Kafka({ clientId: config.client_id, brokers: config.brokers, logLevel: logLevel.WARN }).consumer({ groupId: config.group_id });
	}

	async start(sink: SourceSink<KafkaDelivery>): Promise<void> {
		this.sink = sink;
		await this.consumer.connect();
		await this.consumer.subscribe({ topics: [this.c.topic], fromBeginning: this.c.from_beginning });
		await this.consumer.run({
			autoCommit: false,
			eachBatchAutoResolve: false,
			eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
				this.highWatermarks.set(batch.partition, BigInt(batch.highWatermark));
				for (const message of batch.messages) {
					if (this.stopping || !isRunning() || isStale()) break;
					await sink.deliver([this.toDelivery(batch.topic, batch.partition, message)]);
					resolveOffset(message.offset);
					await heartbeat();
				}
			},
		});
	}

	/** The partition's tracker; a new one when the group went back to an earlier offset (a rebalance, a seek). */
	private trackerFor(partition: number, offset: bigint): OrderedAcks<bigint> {
		let t = this.trackers.get(partition);
		if (!t || offset <= t.last) {
			t = { acks: new OrderedAcks<bigint>(), last: -1n };
			this.trackers.set(partition, t);
		}
		t.last = offset;
		t.acks.add(offset);
		return t.acks;
	}

	toDelivery(topic: string, partition: number, m: KafkaMessage): KafkaDelivery {
		const offset = BigInt(m.offset);
		const d: KafkaDelivery = {
			id: boundedId("kafka", `kafka:${topic}:${partition}:${seq20(offset)}`),
			time: Number(m.timestamp),
			partition,
			offset,
			tracker: this.trackerFor(partition, offset),
		};
		if (m.value === null) {
			// A tombstone: the record key says what is deleted.
			if (m.key !== null) Object.assign(d, { key: m.key.toString("utf8"), op: "delete", message: null });
			else d.error = "a tombstone (null value) without a record key";
		} else Object.assign(d, decodeJson(m.value));
		return d;
	}

	async ack(messages: KafkaDelivery[]): Promise<void> {
		const byPartition = new Map<number, KafkaDelivery[]>();
		for (const d of messages) byPartition.set(d.partition, [...(byPartition.get(d.partition) ?? []), d]);
		const offsets: { topic: string; partition: number; offset: string }[] = [];
		for (const [partition, list] of byPartition) {
			const current = this.trackers.get(partition)?.acks;
			// Acks for a tracker a rewind replaced are moot: those messages come again.
			const last = current?.ack(list.filter((d) => d.tracker === current).map((d) => d.offset));
			if (last === undefined) continue;
			const next = last + 1n;
			if (next <= (this.committed.get(partition) ?? -1n)) continue;
			this.committed.set(partition, next);
			offsets.push({ topic: this.c.topic, partition, offset: String(next) });
		}
		if (!offsets.length) return;
		const commit = this.commits.then(() => this.consumer.commitOffsets(offsets));
		this.commits = commit.catch((e) => this.sink?.warn(`commit failed (the messages will be read again): ${(e as Error).message}`));
		await this.commits;
	}

	async stop(): Promise<void> {
		this.stopping = true;
		// Paused, not stopped: the group keeps the partitions, so the drain's acks can still be committed.
		this.consumer.pause([{ topic: this.c.topic }]);
	}

	async close(): Promise<void> {
		this.stopping = true;
		await this.commits;
		await this.consumer.disconnect();
	}

	async lag(): Promise<number | null> {
		if (!this.highWatermarks.size) return null;
		let lag = 0n;
		for (const [partition, hw] of this.highWatermarks) {
			const next = this.committed.get(partition) ?? 0n;
			if (hw > next) lag += hw - next;
		}
		return Number(lag);
	}
}
