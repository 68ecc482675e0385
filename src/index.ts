/** Worker entry: HTTP through the Hono app, the events and dead-letter queue consumers, and the cron trigger. */

import { pruneAggregateTiles } from "./aggregates/retention";
import { createApp } from "./app";
import { type Env, parseSettings } from "./env";
import { pruneIdempotencyReceipts, pruneStep } from "./history/retention";
import { consumeEvents } from "./ingest/consumer";
import { consumeDeadLetters, drainDeadLetters } from "./ingest/dead-letters";
import { log, logOnce } from "./observability/log";
import { corsPreflight, withCors } from "./routes/cors";
import { fastRecordRead } from "./routes/fast-read";
import { servicesFor } from "./services";

const app = createApp();

export default {
	async fetch(req, env, ctx) {
		const preflight = corsPreflight(req);
		if (preflight) return preflight;
		// A fresh L0 hit of a plain record read skips the app (src/routes/fast-read.ts). Whatever the
		// lane does not answer, including its own errors, the app answers as it always would.
		try {
			const lane = fastRecordRead(req, () => servicesFor(env), ctx);
			const res = lane instanceof Promise ? await lane : lane;
			if (res) return res;
		} catch (e) {
			// The app meets the same failure (D1 down, a bad setting) and turns it into the right
			// problem response; it logs the failures it answers.
			logOnce("fast-lane", "warn", "L0 fast lane failed; the app answers instead", { error: String(e) });
		}
		return withCors(await app.fetch(req, env, ctx));
	},

	/** Dispatch by the configured queue names: a dead-letter queue is never re-applied as events, whatever it is called. */
	async queue(batch, env) {
		// The names of this env, read per batch (the services are shared across env objects).
		const { EVENTS_QUEUE_NAME, DEAD_LETTER_QUEUE_NAME } = parseSettings(env);
		if (batch.queue === DEAD_LETTER_QUEUE_NAME) await consumeDeadLetters(batch, env.DB, env.RECORDS_KV);
		else if (batch.queue === EVENTS_QUEUE_NAME) {
			const services = servicesFor(env);
			await consumeEvents(batch, services, {}, { pruneStep: async (holder) => pruneStep(env.DB, env.EVENTS_QUEUE, await services.registry.all(), holder) });
		} else {
			// A queue this worker was not told about: touch nothing, and let its retries and dead-letter queue keep the messages.
			log.error("batch from an unknown queue; not consumed", {
				queue: batch.queue,
				expected: [EVENTS_QUEUE_NAME, DEAD_LETTER_QUEUE_NAME],
				messages: batch.messages.length,
			});
			batch.retryAll({ delaySeconds: 60 });
		}
	},

	/** The cron trigger: move dead letters that waited in KV into D1, prune the event log past each dataset's history_days, old aggregate tiles, and old Idempotency-Key receipts. */
	async scheduled(_controller, env) {
		const services = servicesFor(env);
		await drainDeadLetters(env.DB, env.RECORDS_KV);
		// Each job runs whatever the other does (a log prune that keeps failing must not stop the tiles'
		// retention too); the first failure is still thrown, so the run is reported as failed.
		const failures: unknown[] = [];
		const run = (job: () => Promise<unknown>) => job().catch((e: unknown) => void failures.push(e));
		// Starts a prune unless one is running; a prune that has more to do goes on through the queue.
		await run(async () => pruneStep(env.DB, env.EVENTS_QUEUE, await services.registry.all()));
		await run(() => pruneAggregateTiles(env.DB));
		await run(async () => pruneIdempotencyReceipts(env.DB, (await services.registry.all()).values()));
		if (failures.length) throw failures[0];
	},
} satisfies ExportedHandler<Env>;
