/** Worker entry: HTTP through the Hono app, and the events and dead-letter queue consumers. */
import { createApp } from "./app";
import type { Env } from "./env";
import { consumeDeadLetters, consumeEvents } from "./ingest/consumer";
import { servicesFor } from "./services";

const app = createApp();

export default {
	fetch: app.fetch,
	async queue(batch, env) {
		const services = servicesFor(env);
		if (batch.queue.endsWith("-dlq")) await consumeDeadLetters(batch, services);
		else await consumeEvents(batch, services);
	},
} satisfies ExportedHandler<Env>;
