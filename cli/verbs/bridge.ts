/** `hotpath bridge --config FILE`: the long-running stream bridge (cli/bridge/), which parses its own arguments. */
import type { Command } from "commander";
import { passthroughVerb } from "./passthrough.ts";

export function registerBridge(program: Command): void {
	passthroughVerb("bridge", "move messages from streams (NATS, Redis Streams, RabbitMQ, MQTT, PostgreSQL, Kafka) into Hotpath", async (argv) => {
		const code = await (await import("../bridge/main.ts")).bridgeMain(argv);
		// A clean stop may leave a client library's timers or idle sockets behind: the bridge is done, so is the process.
		process.exit(code);
	})(program);
}
