/**
 * NATS JetStream: a durable pull consumer with explicit acks. The id is `nats:STREAM:SEQ` (the stream
 * sequence, zero-padded); the default event_time is the time the stream stored the message.
 */
import {
	AckPolicy,
	type ConsumerMessages,
	DeliverPolicy,
	JetStreamApiCodes,
	JetStreamApiError,
	type JetStreamManager,
	type JsMsg,
	jetstream,
	jetstreamManager,
} from "@nats-io/jetstream";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { NatsConfig } from "../config.ts";
import { boundedId, seq20 } from "../ids.ts";
import { decodeJson } from "./decode.ts";
import type { Delivery, Source, SourceSink } from "./source.ts";

export interface NatsDelivery extends Delivery {
	msg: JsMsg;
	seq: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NatsSource implements Source<NatsDelivery> {
	private readonly c: NatsConfig;
	private nc: NatsConnection | undefined;
	private jsm: JetStreamManager | undefined;
	private messages: ConsumerMessages | undefined;
	private loop: Promise<void> | undefined;
	private stopping = false;
	/** Delivered, not yet acked: kept alive with working() while Hotpath is slow or down. */
	private readonly unacked = new Map<number, { msg: JsMsg; touched: number }>();
	private keepAlive: NodeJS.Timeout | undefined;

	constructor(config: NatsConfig) {
		this.c = config;
	}

	async start(sink: SourceSink<NatsDelivery>): Promise<void> {
		const c = this.c;
		this.nc = await connect({
			servers: c.servers,
			name: "hotpath-bridge",
			user: c.user,
			pass: c.pass,
			token: c.token,
			maxReconnectAttempts: -1,
		});
		this.jsm = await jetstreamManager(this.nc);
		await this.ensureConsumer(sink);
		const js = jetstream(this.nc);
		let consumer = await js.consumers.get(c.stream, c.durable);

		const every = Math.max(1000, Math.floor(c.ack_wait_ms / 3));
		this.keepAlive = setInterval(() => {
			const now = Date.now();
			for (const entry of this.unacked.values()) {
				if (now - entry.touched < every) continue;
				entry.msg.working();
				entry.touched = now;
			}
		}, every);

		const toDelivery = (msg: JsMsg): NatsDelivery => {
			// info parses the reply subject: once per message.
			const { streamSequence, timestampNanos } = msg.info;
			this.unacked.set(streamSequence, { msg, touched: Date.now() });
			const d: NatsDelivery = {
				id: boundedId("nats", `nats:${c.stream}:${seq20(streamSequence)}`),
				time: Math.floor(timestampNanos / 1e6),
				seq: streamSequence,
				msg,
			};
			const decoded = decodeJson(msg.data);
			if (decoded.error === undefined) d.message = decoded.message;
			else Object.assign(d, decoded);
			return d;
		};

		this.loop = (async () => {
			for (let round = 0; !this.stopping; round++) {
				try {
					if (round > 0) {
						// The durable may have been deleted (the client would wait for it for ever, consuming
						// nothing): make it again, as at start. Redelivered messages apply once (their ids).
						if (await this.ensureConsumer(sink)) sink.warn(`consumer "${c.durable}" was gone; created it again (from the stream's start)`);
						consumer = await js.consumers.get(c.stream, c.durable);
					}
					this.messages = await consumer.consume({ max_messages: 1000, abort_on_missing_resource: true });
					// After stop() the iterator still yields what it holds, then ends: those go through too.
					// Messages the iterator yields back to back go over in one batch (handed over once the
					// iterator pauses); the loop waits for the pipeline when a batch gets large.
					let batch: NatsDelivery[] = [];
					let handing: Promise<void> | undefined;
					const handOver = async () => {
						while (batch.length) {
							const out = batch;
							batch = [];
							await sink.deliver(out);
						}
						handing = undefined;
					};
					for await (const msg of this.messages) {
						batch.push(toDelivery(msg));
						handing ??= new Promise((resolve) => setImmediate(resolve)).then(handOver);
						if (batch.length >= 500) await handing;
					}
					await handing;
					if (!this.stopping) {
						sink.warn("the consumer stopped delivering (deleted?); starting over in 1 s");
						await sleep(1000);
					}
				} catch (e) {
					if (this.stopping) break;
					sink.warn(`consume failed, retrying in 1 s: ${(e as Error).message}`);
					await sleep(1000);
				}
			}
		})();
	}

	/** Uses the durable consumer, creating it (explicit acks, from the stream's start) when it does not exist; true when it created it. */
	private async ensureConsumer(sink: SourceSink<NatsDelivery>): Promise<boolean> {
		const c = this.c;
		const jsm = this.jsm as JetStreamManager;
		try {
			await jsm.streams.info(c.stream);
		} catch (e) {
			throw new Error(`NATS stream "${c.stream}" cannot be used: ${(e as Error).message}`);
		}
		try {
			const info = await jsm.consumers.info(c.stream, c.durable);
			if (info.config.ack_policy !== AckPolicy.Explicit) throw new Error(`consumer "${c.durable}" must use explicit acks, not ${info.config.ack_policy}`);
			if (c.subject && info.config.filter_subject && info.config.filter_subject !== c.subject) {
				sink.warn(`consumer "${c.durable}" filters "${info.config.filter_subject}", not "${c.subject}" as configured; using it as it is`);
			}
			return false;
		} catch (e) {
			if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound)) throw e;
		}
		await jsm.consumers.add(c.stream, {
			durable_name: c.durable,
			ack_policy: AckPolicy.Explicit,
			deliver_policy: DeliverPolicy.All,
			ack_wait: nanos(c.ack_wait_ms),
			max_ack_pending: c.max_ack_pending,
			...(c.subject ? { filter_subject: c.subject } : {}),
		});
		return true;
	}

	async ack(messages: NatsDelivery[]): Promise<void> {
		for (const d of messages) {
			d.msg.ack();
			this.unacked.delete(d.seq);
		}
		// One round trip makes sure the server has the acks before the bridge counts them as done.
		await this.nc?.flush();
	}

	async stop(): Promise<void> {
		this.stopping = true;
		this.messages?.stop();
		await this.loop;
	}

	async close(): Promise<void> {
		this.stopping = true;
		clearInterval(this.keepAlive);
		this.messages?.stop();
		if (this.nc && !this.nc.isClosed()) {
			await this.nc.flush().catch(() => {});
			await this.nc.close();
		}
	}

	async lag(): Promise<number | null> {
		if (!this.jsm) return null;
		const info = await this.jsm.consumers.info(this.c.stream, this.c.durable);
		return info.num_pending + info.num_ack_pending;
	}
}
