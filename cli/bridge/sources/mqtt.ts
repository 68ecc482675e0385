/**
 * MQTT: a topic filter subscribed with QoS 1 in a persistent session (MQTT 5, clean start off, a
 * session expiry), so messages published while the bridge is away wait at the broker. The PUBACK
 * for a message goes out only after Hotpath's 202; until then the broker counts it in flight (up
 * to Receive Maximum: the back-pressure) and sends it again on the next connection. MQTT has no
 * message id, so the id is `mqtt:TOPIC:h:<hash of the payload>`; the default event_time is when the
 * bridge received the message.
 */
import { connect, type IPublishPacket, type MqttClient } from "mqtt";
import type { MqttConfig } from "../config.ts";
import { boundedId, contentHash } from "../ids.ts";
import { decodeJson } from "./decode.ts";
import { type Delivery, type Source, type SourceSink, withoutPassword } from "./source.ts";

export interface MqttDelivery extends Delivery {
	messageId: number;
	/** The connection it came on: a PUBACK belongs to that one; after a reconnect the broker sends the message again. */
	connection: number;
}

/**
 * mqtt.js handles incoming packets one at a time and waits for `customHandleAcks`' callback before
 * the next, so holding the callback until Hotpath answers would let one message through per POST.
 * Answering with this error tells mqtt.js to go on without sending a PUBACK; the bridge sends it later.
 */
const DEFERRED = new Error("PUBACK deferred until Hotpath has the message");

interface PacketSender {
	_sendPacket(packet: { cmd: "puback"; messageId: number; reasonCode: number }, cb?: () => void): void;
}

export class MqttSource implements Source<MqttDelivery> {
	private readonly c: MqttConfig;
	private client: MqttClient | undefined;
	private sink: SourceSink<MqttDelivery> | undefined;
	private chain: Promise<void> = Promise.resolve();
	private connection = 0;
	private stopping = false;

	constructor(config: MqttConfig) {
		this.c = config;
	}

	async start(sink: SourceSink<MqttDelivery>): Promise<void> {
		this.sink = sink;
		const c = this.c;
		const client = connect(c.url, {
			clientId: c.client_id,
			clean: false,
			protocolVersion: 5,
			properties: { sessionExpiryInterval: c.session_expiry_s, receiveMaximum: c.receive_maximum },
			username: c.username,
			password: c.password,
			reconnectPeriod: 1000,
			customHandleAcks: (topic, payload, packet: IPublishPacket, done) => this.onMessage(topic, payload, packet, done),
		});
		this.client = client;
		// mqtt.js hands a QoS 0 message (a publisher's QoS 0 is delivered at QoS 0) only to 'message'
		// listeners, never to customHandleAcks; it has nothing to acknowledge. QoS 1 comes through customHandleAcks.
		client.on("message", (topic, payload, packet) => {
			if (packet.qos === 0) this.onMessage(topic, payload, packet, () => {});
		});
		client.on("connect", () => {
			this.connection++;
		});
		client.on("error", (e) => {
			if (e === DEFERRED) return;
			if (this.connection > 0) sink.warn(`MQTT: ${e.message}`);
		});
		await new Promise<void>((resolve, reject) => {
			const onError = (e: Error) => {
				if (e === DEFERRED) return;
				client.end(true);
				reject(new Error(`MQTT broker at ${withoutPassword(c.url)}: ${e.message}`));
			};
			client.once("connect", (connack) => {
				client.off("error", onError);
				// A resumed session still has the subscription; subscribing again is harmless and covers a new one.
				client.subscribe(c.topic, { qos: 1 }, (err, granted) => {
					if (err) return reject(new Error(`MQTT subscribe to "${c.topic}": ${err.message}`));
					if (granted?.[0] && granted[0].qos !== 1) return reject(new Error(`MQTT broker granted QoS ${granted[0].qos} for "${c.topic}", not 1`));
					if (!connack.sessionPresent) sink.warn(`new MQTT session for client id "${c.client_id}" (messages from before it are not there)`);
					resolve();
				});
			});
			client.on("error", onError);
		});
	}

	private onMessage(topic: string, payload: Buffer, packet: IPublishPacket, done: (error: Error | number, code?: number) => void): void {
		if (packet.qos === 0 || packet.messageId === undefined) {
			done(0);
			if (this.stopping) return;
		} else {
			done(DEFERRED);
			// Not acked: the broker sends it again to the next session.
			if (this.stopping) return;
		}
		const d: MqttDelivery = {
			id: boundedId("mqtt", `mqtt:${topic}:h:${contentHash(payload)}`),
			time: Date.now(),
			messageId: packet.messageId ?? -1,
			connection: this.connection,
			...decodeJson(payload),
		};
		const sink = this.sink as SourceSink<MqttDelivery>;
		this.chain = this.chain.then(() => sink.deliver([d])).catch((e) => sink.fail(e as Error));
	}

	async ack(messages: MqttDelivery[]): Promise<void> {
		const client = this.client as unknown as PacketSender;
		for (const d of messages) {
			if (d.messageId < 0 || d.connection !== this.connection || !this.client?.connected) continue;
			client._sendPacket({ cmd: "puback", messageId: d.messageId, reasonCode: 0 });
		}
	}

	async stop(): Promise<void> {
		// No unsubscribe: the session's subscription is what keeps messages coming while the bridge is away.
		this.stopping = true;
		await this.chain;
	}

	async close(): Promise<void> {
		this.stopping = true;
		const client = this.client;
		if (client) await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
	}

	async lag(): Promise<number | null> {
		return null;
	}
}
