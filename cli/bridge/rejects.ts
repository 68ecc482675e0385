/** A source's reject log: one NDJSON line per message that was not (and will never be) applied. */
import { once } from "node:events";
import { constants, createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { access, open, stat } from "node:fs/promises";
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

/** A number JSON cannot carry (the reason a message was rejected) as text ("Infinity"), where JSON.stringify would write null. */
const keepNonFinite = (_key: string, v: unknown): unknown => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v);

export class RejectLog {
	readonly file: string;
	private readonly source: string;
	private stream: WriteStream | undefined;
	private opening: Promise<void> | undefined;

	constructor(file: string, source: string) {
		this.file = path.resolve(file);
		this.source = source;
	}

	/**
	 * Rejects when the file could not be written (a directory, no permission), without creating it:
	 * the bridge checks every reject log before its sources start, so a bad path is an error then,
	 * not a crash at the first reject.
	 */
	async check(): Promise<void> {
		if (this.stream) return;
		const st = await stat(this.file).catch(() => undefined);
		if (st) {
			// There already: opening it for appending changes nothing and proves it can be written.
			await (await open(this.file, "a")).close();
			return;
		}
		const dir = path.dirname(this.file);
		mkdirSync(dir, { recursive: true });
		await access(dir, constants.W_OK);
	}

	/**
	 * Opens the file for appending; rejects when it cannot be. A stream that fails later (a full disk)
	 * fails its writes and is opened again on the next one: never an unhandled 'error' event.
	 */
	async open(): Promise<void> {
		if (this.stream) return;
		// Writes that arrive while it opens wait for the same stream.
		this.opening ??= this.openStream().finally(() => {
			this.opening = undefined;
		});
		return this.opening;
	}

	private async openStream(): Promise<void> {
		mkdirSync(path.dirname(this.file), { recursive: true });
		const stream = createWriteStream(this.file, { flags: "a" });
		stream.on("error", () => {
			if (this.stream === stream) this.stream = undefined;
		});
		await new Promise<void>((resolve, reject) => {
			stream.once("open", () => resolve());
			stream.once("error", reject);
		});
		this.stream = stream;
	}

	/** Appends the entries; resolves once they are written, so they are on file before the messages are acked. */
	async write(entries: RejectEntry[]): Promise<void> {
		if (!entries.length) return;
		await this.open();
		const time = new Date().toISOString();
		const text = entries.map((e) => JSON.stringify({ time, source: this.source, ...e }, keepNonFinite)).join("\n");
		const stream = this.stream as WriteStream;
		await new Promise<void>((resolve, reject) => stream.write(`${text}\n`, (err) => (err ? reject(err) : resolve())));
	}

	async close(): Promise<void> {
		const stream = this.stream;
		this.stream = undefined;
		if (!stream) return;
		stream.end();
		if (!stream.closed) await once(stream, "close");
	}
}
