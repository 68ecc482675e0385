/** The one interface every stream source implements: deliver messages, take acknowledgements, stop. */

export type Op = "upsert" | "patch" | "delete";

/** One message as a source hands it to the bridge. */
export interface Delivery {
	/** The event id: the source's own position, the same each time the message is redelivered. */
	id: string;
	/** The message as JSON. Undefined when `error` says why it could not be read. */
	message?: unknown;
	/** Why the message cannot be used (bad JSON, say): it is rejected, not sent. */
	error?: string;
	/** The message as text, for the reject log, when it is not JSON. */
	raw?: string;
	/**
	 * The message is a flat object of text values (a Redis Streams entry's fields), where a number can
	 * only be a string: a string of digits at the event_time pointer is epoch milliseconds.
	 */
	textValues?: boolean;
	/** The event_time to use when the map names none: the source's own time for the message (epoch ms). */
	time?: number;
	/** The key when the map has no pointer for it, or its pointer finds nothing (a primary key, a Kafka record key). */
	key?: string;
	/** The op, when the source knows it from the change itself (postgres, a Kafka tombstone): it wins over the map's pointer. */
	op?: Op;
	/** The value when the map has no pointer for it (postgres: the row without its primary key). */
	value?: Record<string, unknown>;
	/** The dataset, when the source decides it per message (postgres: per table). */
	dataset?: string;
}

/** What a running source calls back into. */
export interface SourceSink<D extends Delivery> {
	/**
	 * Hands over messages in source order. The promise resolves when the bridge has room for more:
	 * a source must not pull again before it does (back-pressure).
	 */
	deliver(messages: D[]): Promise<void>;
	/** The source cannot go on (lost its connection for good, say): the bridge stops with this error. */
	fail(error: Error): void;
	/** Something worth a log line that does not stop the source. */
	warn(message: string): void;
}

export interface Source<D extends Delivery = Delivery> {
	/** Connects and starts pulling. Resolves once messages may flow; rejects when it cannot start. */
	start(sink: SourceSink<D>): Promise<void>;
	/** Acknowledges messages Hotpath has accepted (or that were rejected for good). Any order. */
	ack(messages: D[]): Promise<void>;
	/**
	 * Messages the bridge gave up on without acknowledging them (their ack failed, or their reject
	 * could not be recorded): a source that skips messages it has handed over must deliver these
	 * again, as it would after a restart.
	 */
	release?(messages: D[]): void;
	/**
	 * Hands rejected messages to the source's own dead-letter mechanism, when it has one and the
	 * config asks for it. Resolves false when the bridge should log and ack them instead.
	 */
	deadLetter?(messages: D[], reasons: string[]): Promise<boolean>;
	/** Stops pulling: once this resolves, `deliver` is not called again. Acks still work. */
	stop(): Promise<void>;
	/** Releases the connections (after the last acks). */
	close(): Promise<void>;
	/** Messages (or for postgres, WAL bytes) not yet acknowledged at the source; null when unknown. */
	lag(): Promise<number | null>;
}

/** A source URL as a message may show it: without its password. */
export function withoutPassword(url: string): string {
	try {
		const u = new URL(url);
		if (!u.password) return url;
		u.password = "***";
		return u.toString();
	} catch {
		return url;
	}
}
