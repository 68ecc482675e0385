/** A source's reject log: one NDJSON line per message that was not (and will never be) applied. */
import { once } from "node:events";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import path from "node:path";

export interface RejectEntry {
	/** The event id (the message's position at its source). */
	id: string;
	/** Why: the bridge could not map it, or Hotpath refused it. */
	error: string;
	/** Who refused it. */
	by: "bridge" | "hotpath";
	/** The message as JSON, or as text when it was not JSON. */
	message?: unknown;
	raw?: string;
}

export class RejectLog {
	readonly file: string;
	private readonly source: string;
	private stream: WriteStream | undefined;

	constructor(file: string, source: string) {
		this.file = path.resolve(file);
		this.source = source;
	}

	/** Appends the entries; resolves once they are written, so they are on file before the messages are acked. */
	async write(entries: RejectEntry[]): Promise<void> {
		if (!entries.length) return;
		if (!this.stream) {
			mkdirSync(path.dirname(this.file), { recursive: true });
			this.stream = createWriteStream(this.file, { flags: "a" });
		}
		const time = new Date().toISOString();
		const text = entries.map((e) => JSON.stringify({ time, source: this.source, ...e })).join("\n");
		const stream = this.stream;
		await new Promise<void>((resolve, reject) => stream.write(`${text}\n`, (err) => (err ? reject(err) : resolve())));
	}

	async close(): Promise<void> {
		const stream = this.stream;
		this.stream = undefined;
		if (!stream) return;
		stream.end();
		await once(stream, "close");
	}
}
