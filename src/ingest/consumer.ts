/**
 * The events consumer: folds a batch into D1, keeps what it cannot apply as dead letters, acks
 * only after D1 has committed, then brings the caches up to D1 (src/ingest/cache-refresh.ts).
 */

import { backfillPage } from "../aggregates/backfill";
import { log } from "../observability/log";
import { consumeSearchMessage } from "../search/jobs";
import type { Services } from "../services";
import { getBackfill } from "../storage/aggregates";
import { type ApplyResult, applyEvents } from "./apply";
import { type RefreshOptions, type RefreshRequest, refreshCaches } from "./cache-refresh";
import { deadLetterOf, deadLetterOfRefused, keepDeadLetters, NOT_A_HOTPATH_MESSAGE } from "./dead-letters";
import type { ChangeEvent } from "./merge";
import { enqueueRebuildPage, type RebuildPage, readQueueMessage } from "./producer";
import { failRebuildPage, keepRebuildsAlive, REBUILD_PAGES_PER_INVOCATION, rebuildPage, retryRebuildPage } from "./rebuild";

/** Delay before a failed message is retried: 2, 4, 8... seconds, at most a minute. */
const retryDelay = (attempts: number) => Math.min(60, 2 ** attempts);

/** Jobs whose steps come through the events queue but whose work lives above ingest: the worker's entry hands them in. */
export interface QueueJobs {
	/** Runs the next step of an event log prune (src/history/retention.ts pruneStep). */
	pruneStep?: (holder: string) => Promise<unknown>;
}

export async function consumeEvents(batch: MessageBatch<unknown>, services: Services, opts: RefreshOptions = {}, jobs: QueueJobs = {}): Promise<void> {
	const prunes: { msg: Message<unknown>; holder: string }[] = [];
	try {
		await consumeBatch(batch, services, opts, prunes);
	} finally {
		// A prune step takes seconds of D1 work: after the batch's events, which must not wait for it.
		for (const { msg, holder } of prunes) await consumePruneStep(jobs, msg, holder);
	}
}

/** Everything of a batch but its prune steps, which it hands back in `prunes`. */
async function consumeBatch(
	batch: MessageBatch<unknown>,
	services: Services,
	opts: RefreshOptions,
	prunes: { msg: Message<unknown>; holder: string }[],
): Promise<void> {
	const { env } = services;
	const events: ChangeEvent[] = [];
	const requests: RefreshRequest[] = [];
	const good: Message<unknown>[] = [];
	const poison: Message<unknown>[] = [];
	const rebuilds: { msg: Message<unknown>; page: RebuildPage }[] = [];
	for (const msg of batch.messages) {
		const body = readQueueMessage(msg.body);
		if (!body) poison.push(msg);
		else if (body.kind === "rebuild") rebuilds.push({ msg, page: body.page });
		else if (body.kind === "search") await consumeSearchMessage(services, msg, body.message);
		else if (body.kind === "backfill") await consumeBackfillPage(services, msg, body.job);
		else if (body.kind === "prune") prunes.push({ msg, holder: body.holder });
		else {
			if (body.kind === "events") for (const e of body.events) events.push(e);
			else requests.push({ refs: body.refs, tiers: body.tiers, until: body.until });
			good.push(msg);
		}
	}
	if (rebuilds.length) await consumeRebuildPages(services, rebuilds);
	if (poison.length) {
		// A message no retry can fix is kept as a dead letter at once rather than burning retries.
		try {
			await keepDeadLetters(
				env.DB,
				env.RECORDS_KV,
				poison.map((m) => deadLetterOf(m, batch.queue, NOT_A_HOTPATH_MESSAGE)),
			);
			for (const m of poison) m.ack();
		} catch {
			for (const m of poison) m.retry({ delaySeconds: retryDelay(m.attempts) });
		}
	}
	if (!good.length) return;
	const retryAll = () => {
		for (const m of good) m.retry({ delaySeconds: retryDelay(m.attempts) });
	};

	let result: ApplyResult;
	try {
		const specs = events.length ? await services.registry.all() : new Map();
		result = events.length ? await applyEvents(env.DB, events, (d) => specs.get(d)) : { applied: [], refused: [] };
	} catch (e) {
		log.error("applying events to D1 failed; retrying", { error: String(e), messages: good.length });
		return retryAll();
	}
	if (result.refused.length) {
		// One key that cannot be written fails alone: its events are kept with the reason, the rest is applied.
		try {
			const letters = await Promise.all(result.refused.map((r) => deadLetterOfRefused(r, batch.queue)));
			await keepDeadLetters(env.DB, env.RECORDS_KV, letters);
			for (const r of result.refused) log.warn("events refused for one key; kept as a dead letter", { dataset: r.dataset, key: r.key, reason: r.reason });
		} catch (e) {
			log.error("keeping refused events failed; retrying the batch", { error: String(e) });
			return retryAll();
		}
	}

	// D1 has committed: the events are durable. Now bring the caches up to D1's state.
	try {
		await refreshCaches(services, result.applied, requests, opts);
	} catch (e) {
		// Nothing could be refreshed or queued for later: the retry re-applies idempotently (D1 is unchanged) and refreshes again.
		log.error("cache refresh failed; retrying", { error: String(e) });
		return retryAll();
	}
	for (const m of good) m.ack();
}

/** Rebuild pages: a couple per invocation (each spends hundreds of KV operations); the rest come back shortly. */
async function consumeRebuildPages(services: Services, pages: { msg: Message<unknown>; page: RebuildPage }[]): Promise<void> {
	const waiting: string[] = [];
	for (const [i, { msg, page }] of pages.entries()) {
		if (i >= REBUILD_PAGES_PER_INVOCATION) {
			// Sent again as a new message rather than retried: a retry counts against the queue's
			// max_retries, so a page put off a few times (a rebuild of every dataset queues one page
			// each at once) would go to the dead-letter queue and leave its rebuild "running" for good.
			try {
				await enqueueRebuildPage(services.env.EVENTS_QUEUE, page, 1);
				msg.ack();
				waiting.push(page.job);
			} catch {
				msg.retry({ delaySeconds: 1 });
			}
			continue;
		}
		try {
			await rebuildPage(services, page);
			msg.ack();
		} catch (e) {
			// A tier outage outlasts the queue's retries: the page is sent again with its own count
			// and back-off, the run going on (src/ingest/rebuild.ts retryRebuildPage).
			if (
				await retryRebuildPage(services, page, String(e)).then(
					() => true,
					() => false,
				)
			) {
				msg.ack();
				continue;
			}
			// It could not be sent again: the queue retries 5 times (wrangler.toml); the last failure marks the run failed instead.
			// Acked only once the run is marked failed: otherwise the page goes back (and to the
			// dead-letter queue at last, where it can be replayed), rather than away with its run "running".
			if (
				msg.attempts >= 5 &&
				(await failRebuildPage(services, page, String(e)).then(
					() => true,
					() => false,
				))
			)
				msg.ack();
			else msg.retry({ delaySeconds: retryDelay(msg.attempts) });
		}
	}
	// A page waiting its turn behind many others is its run's sign of life: without it, a rebuild of
	// every dataset could outwait its lease and be reported lost while its pages are still queued.
	await keepRebuildsAlive(services, waiting);
}

/** The next step of pruning the event log (src/history/retention.ts); a failure comes back with the usual back-off. */
async function consumePruneStep(jobs: QueueJobs, msg: Message<unknown>, holder: string): Promise<void> {
	try {
		if (!jobs.pruneStep) throw new Error("no prune runner was handed to this consumer");
		await jobs.pruneStep(holder);
		msg.ack();
	} catch (e) {
		log.warn("event log prune step failed; retrying", { error: String(e) });
		msg.retry({ delaySeconds: retryDelay(msg.attempts) });
	}
}

/** One page of an aggregate backfill; a failure comes back with the usual back-off. */
async function consumeBackfillPage(services: Services, msg: Message<unknown>, job: string): Promise<void> {
	try {
		const row = await getBackfill(services.env.DB, job);
		await backfillPage(services.env.DB, services.env.EVENTS_QUEUE, row ? await services.registry.get(row.dataset) : undefined, job, Date.now(), () =>
			row ? services.registry.fresh(row.dataset) : Promise.resolve(undefined),
		);
		msg.ack();
	} catch (e) {
		log.warn("aggregate backfill page failed; retrying", { job, error: String(e) });
		msg.retry({ delaySeconds: retryDelay(msg.attempts) });
	}
}
