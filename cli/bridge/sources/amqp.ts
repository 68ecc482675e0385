/**
 * RabbitMQ (AMQP 0-9-1): a queue consumed with manual acks and a prefetch window, which is also the
 * back-pressure: the broker sends no more than `prefetch` unacknowledged messages. AMQP has no
 * position, so the id is `amqp:QUEUE:<message_id>` when the publisher set one, else
 * `amqp:QUEUE:h:<hash of the body>`; the default event_time is when the bridge received the message.
 */
import { type Channel, type ChannelModel, type ConsumeMessage, connect } from "amqplib";
import type { AmqpConfig } from "../config.ts";
import { boundedId, contentHash } from "../ids.ts";
import { decodeJson } from "./decode.ts";
import { type Delivery, type Source, type SourceSink, withoutPassword } from "./source.ts";

export interface AmqpDelivery extends Delivery {
	msg: ConsumeMessage;
	/** The channel it came on: a delivery tag means nothing on any other. */
	channel: Channel;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The virtual host an AMQP URL names ("/" when it names none). */
function vhostOf(url: string): string {
	try {
		const path = new URL(url).pathname.slice(1);
		return path ? decodeURIComponent(path) : "/";
	} catch {
		return "/";
	}
}

export class AmqpSource implements Source<AmqpDelivery> {
	private readonly c: AmqpConfig;
	private conn: ChannelModel | undefined;
	private channel: Channel | undefined;
	/** For queue checks: a failed check closes its channel, which must not be the consuming one. */
	private adminChannel: Channel | undefined;
	private consumerTag: string | undefined;
	private sink: SourceSink<AmqpDelivery> | undefined;
	/** Deliveries are handed over one after another, in the order the broker sent them. */
	private chain: Promise<void> = Promise.resolve();
	private stopping = false;
	private closing = false;
	private unacked = 0;

	constructor(config: AmqpConfig) {
		this.c = config;
	}

	async start(sink: SourceSink<AmqpDelivery>): Promise<void> {
		this.sink = sink;
		await this.open();
	}

	private async open(): Promise<void> {
		const c = this.c;
		const conn = await connect(c.url).catch((e: Error) => {
			// amqplib says only "Expected ConnectionOpenOk; got <ConnectionClose ...>" when the broker will not open the vhost.
			const why = /^Expected ConnectionOpenOk/.test(e.message)
				? `the broker refused to open virtual host "${vhostOf(c.url)}" (does it exist, and may the user use it?)`
				: e.message;
			throw new Error(`AMQP broker at ${withoutPassword(c.url)}: ${why}`);
		});
		conn.on("error", () => {});
		let channel: Channel;
		try {
			channel = await conn.createChannel();
			channel.on("error", () => {});
			try {
				await channel.checkQueue(c.queue);
			} catch (e) {
				throw new Error(`AMQP queue "${c.queue}" cannot be used: ${(e as Error).message}`);
			}
			await channel.prefetch(c.prefetch);
		} catch (e) {
			await conn.close().catch(() => {});
			throw e;
		}
		this.conn = conn;
		this.channel = channel;
		this.unacked = 0;
		conn.on("close", () => {
			if (this.closing || this.conn !== conn) return;
			this.sink?.warn("connection to the broker lost; reconnecting (unacknowledged messages come again)");
			void this.reconnect();
		});
		// The broker may close the channel alone (an unacked delivery past its consumer_timeout, a
		// precondition failure), or cancel the consumer (the queue was deleted): the connection stays
		// up, and the bridge would sit there consuming nothing. Either way, start over on a new
		// connection, which waits for the queue to exist again.
		channel.on("close", () => {
			if (this.closing || this.stopping || this.channel !== channel) return;
			this.sink?.warn(`the broker closed the channel of "${c.queue}"; reconnecting (unacknowledged messages come again)`);
			void conn.close().catch(() => {});
		});
		const { consumerTag } = await channel.consume(c.queue, (msg) => this.onMessage(msg, channel), { noAck: false });
		this.consumerTag = consumerTag;
	}

	private async reconnect(): Promise<void> {
		for (let delay = 500; !this.closing; delay = Math.min(delay * 2, 30_000)) {
			await sleep(delay);
			if (this.closing) return;
			try {
				await this.open();
				this.sink?.warn("reconnected to the broker");
				return;
			} catch (e) {
				this.sink?.warn(`reconnect failed (${(e as Error).message}); trying again in ${Math.min(delay * 2, 30_000) / 1000} s`);
			}
		}
	}

	private onMessage(msg: ConsumeMessage | null, channel: Channel): void {
		if (!msg) {
			// The broker cancelled the consumer (the queue was deleted): reconnect, and consume again once the queue is back.
			if (this.stopping || this.closing || this.channel !== channel) return;
			this.sink?.warn(`the broker cancelled the consumer of "${this.c.queue}" (was the queue deleted?); reconnecting`);
			void this.conn?.close().catch(() => {});
			return;
		}
		this.unacked++;
		const messageId = msg.properties.messageId as string | undefined;
		const d: AmqpDelivery = {
			id: boundedId("amqp", messageId ? `amqp:${this.c.queue}:${messageId}` : `amqp:${this.c.queue}:h:${contentHash(msg.content)}`),
			time: Date.now(),
			msg,
			channel,
			...decodeJson(msg.content),
		};
		const sink = this.sink as SourceSink<AmqpDelivery>;
		this.chain = this.chain.then(() => sink.deliver([d])).catch((e) => sink.fail(e as Error));
	}

	async ack(messages: AmqpDelivery[]): Promise<void> {
		for (const d of messages) {
			// A delivery from a channel that has since closed was requeued by the broker: it comes again.
			if (d.channel !== this.channel) continue;
			d.channel.ack(d.msg);
			this.unacked--;
		}
	}

	async deadLetter(messages: AmqpDelivery[]): Promise<boolean> {
		if (!this.c.dead_letter) return false;
		for (const d of messages) {
			if (d.channel !== this.channel) continue;
			// Without requeue the broker routes it to the queue's dead-letter exchange (or drops it if it has none).
			d.channel.nack(d.msg, false, false);
			this.unacked--;
		}
		return true;
	}

	async stop(): Promise<void> {
		this.stopping = true;
		if (this.channel && this.consumerTag) await this.channel.cancel(this.consumerTag).catch(() => {});
		await this.chain;
	}

	async close(): Promise<void> {
		this.closing = true;
		await this.adminChannel?.close().catch(() => {});
		await this.channel?.close().catch(() => {});
		await this.conn?.close().catch(() => {});
	}

	async lag(): Promise<number | null> {
		if (!this.conn) return null;
		if (!this.adminChannel) {
			const ch = await this.conn.createChannel();
			ch.on("error", () => {});
			ch.on("close", () => {
				if (this.adminChannel === ch) this.adminChannel = undefined;
			});
			this.adminChannel = ch;
		}
		const q = await this.adminChannel.checkQueue(this.c.queue);
		return q.messageCount + this.unacked;
	}
}
