/** Worker entry: HTTP through the Hono app, and the events and dead-letter queue consumers. */
import { createApp } from "./app";
import type { Env } from "./env";
import { consumeDeadLetters, consumeEvents } from "./ingest/consumer";
import { fastRecordRead } from "./routes/fast-read";
import { servicesFor } from "./services";

const app = createApp();

let laneFailureLogged = false;

export default {
	async fetch(req, env, ctx) {
		// A fresh L0 hit of a plain record read skips the app (src/routes/fast-read.ts). Whatever the
		// lane does not answer, including its own errors, the app answers as it always would.
		try {
			const lane = fastRecordRead(req, () => servicesFor(env));
			const res = lane && (await lane);
			if (res) return res;
		} catch (e) {
			// The app meets the same failure (D1 down, a bad setting) and turns it into the right
			// problem response. Logged once per isolate: the app logs the failures it answers.
			if (!laneFailureLogged) {
				laneFailureLogged = true;
				console.warn(JSON.stringify({ msg: "L0 fast lane failed; the app answers instead", error: String(e) }));
			}
		}
		return app.fetch(req, env, ctx);
	},
	async queue(batch, env) {
		const services = servicesFor(env);
		if (batch.queue.endsWith("-dlq")) await consumeDeadLetters(batch, services);
		else await consumeEvents(batch, services);
	},
} satisfies ExportedHandler<Env>;
