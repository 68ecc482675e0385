// The kafka source with a fake kafkajs consumer (no broker can be reached here): mapping, and offsets
// committed per partition, in order, as offset + 1, only once Hotpath has answered.
import type { EachBatchPayload, KafkaMessage } from "kafkajs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type KafkaConfig, parseConfig } from "../../../cli/bridge/config.ts";
import { compileMap } from "../../../cli/bridge/mapping.ts";
import { Slots, SourcePipeline } from "../../../cli/bridge/pipeline.ts";
import { RejectLog } from "../../../cli/bridge/rejects.ts";
import { type KafkaConsumerLike, type KafkaDelivery, KafkaSource } from "../../../cli/bridge/sources/kafka.ts";
import type { SourceSink } from "../../../cli/bridge/sources/source.ts";
import { HotpathTarget } from "../../../cli/bridge/target.ts";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { eventually, readNdjson, scratchDir } from "./harness.ts";

type Commit = { topic: string; partition: number; offset: string };

/** Stands in for a kafkajs consumer: the test hands it batches as the broker would. */
class FakeConsumer implements KafkaConsumerLike {
	commits: Commit[] = [];
	paused: unknown[] = [];
	failCommits = false;
	eachBatch: ((p: EachBatchPayload) => Promise<void>) | undefined;
	resolved: string[] = [];
	subscribed: unknown;
	async connect() {}
	async disconnect() {}
	async subscribe(s: unknown) {
		this.subscribed = s;
	}
	async run(config?: { eachBatch?: (p: EachBatchPayload) => Promise<void>; autoCommit?: boolean }) {
		expect(config?.autoCommit).toBe(false);
		this.eachBatch = config?.eachBatch;
	}
	async commitOffsets(offsets: Commit[]) {
		if (this.failCommits) throw new Error("The coordinator is not aware of this member");
		this.commits.push(...offsets);
	}
	pause(topics: unknown[]) {
		this.paused.push(...topics);
	}
	/** Delivers one fetched batch, as kafkajs's fetch loop does. */
	async batch(partition: number, messages: { offset: number; value: unknown; key?: string; timestamp?: number }[], highWatermark: number) {
		const kafkaMessages = messages.map(
			(m) =>
				({
					key: m.key === undefined ? null : Buffer.from(m.key),
					value: m.value === null ? null : Buffer.from(typeof m.value === "string" ? m.value : JSON.stringify(m.value)),
					timestamp: String(m.timestamp ?? 1_767_323_045_000 + m.offset),
					attributes: 0,
					offset: String(m.offset),
					headers: {},
				}) as KafkaMessage,
		);
		await this.eachBatch?.({
			batch: { topic: "orders", partition, highWatermark: String(highWatermark), messages: kafkaMessages },
			resolveOffset: (o: string) => this.resolved.push(`${partition}:${o}`),
			heartbeat: async () => {},
			isRunning: () => true,
			isStale: () => false,
		} as unknown as EachBatchPayload);
	}
}

const kafkaConfig = parseConfig(
	{
		target: { key: "k" },
		sources: [{ type: "kafka", dataset: "orders", map: { key: "/id" }, brokers: ["unused:9092"], topic: "orders", group_id: "hotpath" }],
	},
	"test",
	{},
).sources[0] as KafkaConfig;

function collectingSink(): SourceSink<KafkaDelivery> & { got: KafkaDelivery[]; warnings: string[] } {
	const got: KafkaDelivery[] = [];
	const warnings: string[] = [];
	return {
		got,
		warnings,
		deliver: async (m) => {
			got.push(...m);
		},
		fail: (e) => {
			throw e;
		},
		warn: (w) => warnings.push(w),
	};
}

describe("kafka source (fake consumer)", () => {
	it("maps records: id from topic, partition and padded offset, time from the record, a tombstone as a delete", async () => {
		const consumer = new FakeConsumer();
		const source = new KafkaSource(kafkaConfig, consumer);
		const sink = collectingSink();
		await source.start(sink);
		expect(consumer.subscribed).toEqual({ topics: ["orders"], fromBeginning: true });
		await consumer.batch(
			3,
			[
				{ offset: 41, value: { id: "o1", total: 9.5 }, timestamp: 1_767_323_045_123 },
				{ offset: 42, value: null, key: "o1" },
				{ offset: 43, value: "not json" },
			],
			44,
		);
		const mapper = compileMap({ key: "/id" }, "orders");
		expect(sink.got.map((d) => mapper.map(d))).toEqual([
			{ id: `kafka:orders:3:${"41".padStart(20, "0")}`, dataset: "orders", key: "o1", op: "upsert", value: { total: 9.5 }, event_time: 1_767_323_045_123 },
			{ id: `kafka:orders:3:${"42".padStart(20, "0")}`, dataset: "orders", key: "o1", op: "delete", event_time: 1_767_323_045_042 },
			expect.stringContaining("not valid JSON"),
		]);
		expect(consumer.resolved).toEqual(["3:41", "3:42", "3:43"]);
	});

	it("commits offset + 1 per partition only for the acked prefix, in order, whatever order the acks come in", async () => {
		const consumer = new FakeConsumer();
		const source = new KafkaSource(kafkaConfig, consumer);
		const sink = collectingSink();
		await source.start(sink);
		await consumer.batch(
			0,
			[0, 1, 2, 3].map((offset) => ({ offset, value: { id: `a${offset}` } })),
			10,
		);
		await consumer.batch(
			1,
			[7, 8].map((offset) => ({ offset, value: { id: `b${offset}` } })),
			9,
		);
		const [a0, a1, a2, a3, b7, b8] = sink.got as [KafkaDelivery, KafkaDelivery, KafkaDelivery, KafkaDelivery, KafkaDelivery, KafkaDelivery];

		await source.ack([a2, a3, b8]);
		expect(consumer.commits).toEqual([]);
		await source.ack([a0]);
		expect(consumer.commits).toEqual([{ topic: "orders", partition: 0, offset: "1" }]);
		await source.ack([b7, a1]);
		expect(consumer.commits.slice(1)).toEqual(
			expect.arrayContaining([
				{ topic: "orders", partition: 0, offset: "4" },
				{ topic: "orders", partition: 1, offset: "9" },
			]),
		);
		expect(consumer.commits).toHaveLength(3);
		// highWatermark minus the committed next offset, over the partitions.
		expect(await source.lag()).toBe(10 - 4 + (9 - 9));
	});

	it("after a rewind (a rebalance gave the partition back at its committed offset), acks of the old deliveries change nothing", async () => {
		const consumer = new FakeConsumer();
		const source = new KafkaSource(kafkaConfig, consumer);
		const sink = collectingSink();
		await source.start(sink);
		await consumer.batch(
			0,
			[5, 6].map((offset) => ({ offset, value: { id: `x${offset}` } })),
			7,
		);
		const [old5, old6] = sink.got as [KafkaDelivery, KafkaDelivery];
		await consumer.batch(
			0,
			[5, 6].map((offset) => ({ offset, value: { id: `x${offset}` } })),
			7,
		);
		const [, , new5, new6] = sink.got as KafkaDelivery[];
		await source.ack([old5, old6]);
		expect(consumer.commits).toEqual([]);
		await source.ack([new6 as KafkaDelivery, new5 as KafkaDelivery]);
		expect(consumer.commits).toEqual([{ topic: "orders", partition: 0, offset: "7" }]);
	});

	it("a failed commit is a warning, not a crash (the records are read again)", async () => {
		const consumer = new FakeConsumer();
		consumer.failCommits = true;
		const source = new KafkaSource(kafkaConfig, consumer);
		const sink = collectingSink();
		await source.start(sink);
		await consumer.batch(0, [{ offset: 0, value: { id: "z" } }], 1);
		await source.ack(sink.got);
		expect(sink.warnings).toEqual([expect.stringContaining("commit failed")]);
		await source.stop();
		expect(consumer.paused).toEqual([{ topic: "orders" }]);
	});
});

describe("kafka source through the pipeline", () => {
	let fake: FakeHotpath;
	const scratch = scratchDir();
	beforeAll(async () => {
		fake = await startFakeHotpath({ datasets: ["orders"] });
	});
	afterAll(async () => {
		await fake.close();
		scratch.remove();
	});
	beforeEach(async () => {
		await fake.setMode("ok");
	});

	it("commits nothing while Hotpath answers 503, then offset + 1 once it has answered 202; rejects are logged and committed", async () => {
		const consumer = new FakeConsumer();
		const source = new KafkaSource(kafkaConfig, consumer);
		const rejectFile = `${scratch.dir}/kafka-rejects.ndjson`;
		let fatal: Error | undefined;
		const pipeline = new SourcePipeline<KafkaDelivery>({
			name: "kafka-0",
			source,
			mapper: compileMap({ key: "/id" }, "orders"),
			target: new HotpathTarget({ url: fake.url, key: fake.key, timeoutMs: 2000, retry: { initialMs: 50, maxMs: 200 } }),
			slots: new Slots(2),
			rejectLog: new RejectLog(rejectFile, "kafka-0"),
			maxEvents: 10,
			maxWaitMs: 10,
			maxPending: 100,
			onFatal: (e) => {
				fatal = e;
			},
			log: () => {},
		});
		await source.start(pipeline.sink);
		await fake.setMode("503");
		await consumer.batch(
			0,
			[0, 1, 2, 3, 4].map((offset) => ({ offset, value: offset === 2 ? { no: "key" } : { id: `k${offset}`, n: offset } })),
			5,
		);
		await new Promise((r) => setTimeout(r, 500));
		// The unmappable record (offset 2) is acked at once, but offsets 0 and 1 are not: nothing may be committed.
		expect(consumer.commits).toEqual([]);
		expect(pipeline.stats).toMatchObject({ received: 5, acked: 1, rejected: 1, sent: 0 });

		await fake.setMode("ok");
		await eventually(() => (consumer.commits.at(-1)?.offset === "5" ? true : undefined), 5000, "the commit of offset 5");
		expect(consumer.commits.every((c, i, all) => i === 0 || Number(c.offset) > Number(all[i - 1]?.offset))).toBe(true);
		expect(fake.events.map((e) => e.key).sort()).toEqual(["k0", "k1", "k3", "k4"]);
		expect(readNdjson(rejectFile)).toEqual([expect.objectContaining({ error: 'no key at "/id"', by: "bridge" })]);
		await pipeline.drain();
		expect(fatal).toBeUndefined();
	});
});
