/** `hotpath push FILE`: sends NDJSON events (`-` for stdin) to POST /v1/events, in chunks, several in flight. */
import { createHash } from "node:crypto";
import { createReadStream, realpathSync, statSync } from "node:fs";
import path from "node:path";
import { type Event, HotpathError } from "@hotpath/client";
import type { Command } from "commander";
import { intOption, verbAction } from "../context.ts";
import { nonFiniteError } from "../finite.ts";
import { type Chunk, chunked, type RowRejection } from "../load/chunks.ts";
import { ndjsonLines } from "../load/ndjson.ts";
import { runPool } from "../load/pool.ts";
import type { Encoded } from "../load/rows.ts";
import type { SourceItem } from "../load/source.ts";
import { count, duration, UsageError } from "../output.ts";
import { Progress } from "../progress.ts";

/** The events route's limits: 10,000 events and 5 MiB per request. */
const MAX_CHUNK_EVENTS = 10_000;
const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * A 400's items as one reject per event: an event with two unknown members has an item at each
 * (`/3/ttl`, `/3/colour`), which are one rejected event, not two.
 */
export function rejectsOfItems(items: readonly { pointer: string; detail: string }[]): { index: number; error: string }[] {
	const why = new Map<number, string>();
	for (const item of items) {
		const index = Number(item.pointer.split("/")[1]);
		why.set(index, why.has(index) ? `${why.get(index)}; ${item.detail}` : item.detail);
	}
	return [...why].map(([index, error]) => ({ index, error }));
}

function checkEvent(item: SourceItem): Encoded {
	let parsed: unknown;
	try {
		parsed = JSON.parse(item.text ?? "");
	} catch (e) {
		return { error: `not valid JSON: ${(e as Error).message}` };
	}
	if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { error: "an event must be a JSON object" };
	// The events are sent parsed (see send): a 1e400, read as Infinity, would go as null, a missing value the server accepts.
	const notFinite = nonFiniteError(parsed);
	if (notFinite) return { error: notFinite };
	return { text: item.text ?? "" };
}

export function registerPush(program: Command): void {
	program
		.command("push")
		.description("send change events from an NDJSON file (- for stdin): {id?, dataset, key, op, value?, event_time?} per line")
		.argument("<file>")
		.option("--chunk-events <n>", "events per request (default 5000, at most 10000)", intOption(1, MAX_CHUNK_EVENTS))
		.option("--concurrency <n>", "requests in flight (default 4)", intOption(1, 64))
		.option("--no-progress", "no progress bar or lines on stderr")
		.action(
			verbAction(async ({ client, out }, [file]: [string], o: { chunkEvents?: number; concurrency?: number; progress: boolean }) => {
				let size: number | undefined;
				/** Idempotency-Key prefix of a file's chunks: pushing the same file again is a no-op. */
				let keyPrefix: string | undefined;
				if (file !== "-") {
					try {
						const stat = statSync(file);
						size = stat.size;
						const identity = JSON.stringify([realpathSync(file), stat.size, Math.floor(stat.mtimeMs), o.chunkEvents ?? 5000]);
						keyPrefix = `hp-push:${createHash("sha256").update(identity).digest("hex").slice(0, 16)}:`;
					} catch (e) {
						throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
					}
				}
				const stream = file === "-" ? process.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
				const started = Date.now();
				const progress = new Progress({ label: `push ${file === "-" ? "stdin" : path.basename(file)}`, total: size, noun: "events", quiet: !o.progress });
				const totals = { events: 0, accepted: 0, rejected: 0 };
				const rejections: RowRejection[] = [];
				let furthest = 0;

				const send = async (chunk: Chunk) => {
					let accepted = 0;
					let rejected: { index: number; error: string }[] = [];
					if (chunk.lines.length) {
						try {
							// From a file, each chunk's Idempotency-Key (the file's identity and the chunk's index) makes the
							// server derive the missing ids, so pushing the same file twice applies it once. From stdin, push
							// sets random ids before its first attempt: its own retries are safe, a second run is new events.
							const events = chunk.lines.map((l) => JSON.parse(l) as Event);
							const r = await client.push(events, keyPrefix ? { idempotencyKey: `${keyPrefix}${chunk.index}` } : {});
							accepted = r.accepted;
							rejected = r.rejected;
						} catch (e) {
							// A 400 listing items means no event of the chunk was valid: rejections, not a failure.
							if (!(e instanceof HotpathError && e.status === 400 && e.errors.length && e.errors.every((i) => /^\/\d+/.test(i.pointer)))) throw e;
							rejected = rejectsOfItems(e.errors);
						}
					}
					totals.events += chunk.items;
					totals.accepted += accepted;
					const all = [...chunk.localRejects, ...rejected.map((r) => ({ pos: chunk.positions[r.index] ?? -1, error: r.error }))];
					totals.rejected += all.length;
					for (const r of all) if (rejections.length < 1000) rejections.push(r);
					furthest = Math.max(furthest, chunk.end.offset);
					progress.update({ done: furthest, items: totals.events, rejected: totals.rejected });
				};

				try {
					const chunks = chunked(
						ndjsonLines(stream as AsyncIterable<Buffer>),
						checkEvent,
						{ rows: o.chunkEvents ?? 5000, bytes: CHUNK_BYTES },
						{
							index: 0,
							end: { offset: 0, pos: 0 },
						},
					);
					await runPool(chunks, { concurrency: o.concurrency ?? 4, run: send });
				} finally {
					progress.stop();
				}
				rejections.sort((a, b) => a.pos - b.pos);
				const elapsed = Date.now() - started;
				const report = { file, ...totals, rejections, elapsed_ms: elapsed };
				out.result(report, () =>
					[
						`pushed ${count(totals.events)} events in ${duration(elapsed)}: ${count(totals.accepted)} accepted, ${count(totals.rejected)} rejected`,
						...rejections.slice(0, 20).map((r) => `  line ${r.pos}: ${r.error}`),
						...(totals.rejected > 20 ? [`  ... and ${count(totals.rejected - 20)} more`] : []),
					].join("\n"),
				);
				return totals.rejected ? 1 : 0;
			}),
		);
}
