#!/usr/bin/env node
/** `hotpath bridge --config FILE [--status-port [HOST:]PORT]`: argument parsing, signals and exit codes around runBridge. */
import { parseArgs } from "node:util";
import { exitCodeOf } from "../output.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { runBridge } from "./run.ts";

export const BRIDGE_USAGE = `usage: hotpath bridge --config FILE [--status-port [HOST:]PORT] [--status-interval SECONDS] [--drain-timeout SECONDS]

Moves messages from streams (NATS JetStream, Redis Streams, RabbitMQ, MQTT, PostgreSQL logical
replication, Kafka) into Hotpath's POST /v1/events. The config is JSON or YAML; see docs/BRIDGES.md.

  --config FILE            the bridge config (required)
  --status-port PORT       serve GET /metrics (JSON; Prometheus text with ?format=prometheus) on 127.0.0.1:PORT, or HOST:PORT
  --status-interval SECS   one status line on stderr every SECS seconds (default 5; 0 for none)
  --drain-timeout SECS     on SIGTERM/SIGINT, how long to finish what is in flight before giving up (default 60)

target.key may be left out of the config: then HOTPATH_KEY is used, else the admin key in .dev.vars (and HOTPATH_URL for target.url).
Exit codes: 0 stopped cleanly (SIGTERM/SIGINT: in-flight messages drained and acknowledged), 1 fatal error (bad key,
missing dataset, a source that failed, a drain that timed out), 2 bad usage or config, 130 (SIGINT) or 143 (SIGTERM)
when a second signal ended it at once.`;

/** Runs the bridge verb with its arguments (those after `bridge`); resolves with the exit code. */
export async function bridgeMain(argv: string[]): Promise<number> {
	let values: { config?: string; "status-port"?: string; "status-interval"?: string; "drain-timeout"?: string; help?: boolean };
	try {
		({ values } = parseArgs({
			args: argv,
			options: {
				config: { type: "string", short: "c" },
				"status-port": { type: "string" },
				"status-interval": { type: "string" },
				"drain-timeout": { type: "string" },
				help: { type: "boolean", short: "h" },
			},
			strict: true,
			allowPositionals: false,
		}));
	} catch (e) {
		process.stderr.write(`hotpath bridge: ${(e as Error).message}\n${BRIDGE_USAGE}\n`);
		return 2;
	}
	if (values.help) {
		process.stdout.write(`${BRIDGE_USAGE}\n`);
		return 0;
	}
	if (!values.config) {
		process.stderr.write(`hotpath bridge: --config FILE is required\n${BRIDGE_USAGE}\n`);
		return 2;
	}
	const seconds = (name: string, raw: string | undefined): number | undefined | string => {
		if (raw === undefined) return undefined;
		const n = Number(raw);
		return Number.isFinite(n) && n >= 0 ? n * 1000 : `--${name} must be a number of seconds, not "${raw}"`;
	};
	let statusHost: string | undefined;
	let statusPort: number | undefined;
	if (values["status-port"] !== undefined) {
		const m = /^(?:(.+):)?(\d{1,5})$/.exec(values["status-port"]);
		if (!m || Number(m[2]) > 65535) {
			process.stderr.write(`hotpath bridge: --status-port must be PORT or HOST:PORT, not "${values["status-port"]}"\n`);
			return 2;
		}
		statusHost = m[1];
		statusPort = Number(m[2]);
	}
	const statusIntervalMs = seconds("status-interval", values["status-interval"]);
	const drainTimeoutMs = seconds("drain-timeout", values["drain-timeout"]);
	for (const v of [statusIntervalMs, drainTimeoutMs]) {
		if (typeof v === "string") {
			process.stderr.write(`hotpath bridge: ${v}\n`);
			return 2;
		}
	}

	let config: ReturnType<typeof loadConfig>;
	try {
		config = loadConfig(values.config);
	} catch (e) {
		if (e instanceof ConfigError) {
			process.stderr.write(`hotpath bridge: ${e.message}\n`);
			return 2;
		}
		throw e;
	}

	const stop = new AbortController();
	const onSignal = (signal: NodeJS.Signals) => {
		if (stop.signal.aborted) {
			process.stderr.write(`hotpath bridge: ${signal} again, exiting now; unacknowledged messages will be delivered again\n`);
			process.exit(exitCodeOf(signal));
		}
		process.stderr.write(`hotpath bridge: ${signal}, stopping gracefully (send it again to exit at once)\n`);
		stop.abort();
	};
	process.on("SIGTERM", onSignal);
	process.on("SIGINT", onSignal);
	try {
		return await runBridge(config, {
			statusPort,
			statusHost,
			statusIntervalMs: statusIntervalMs as number | undefined,
			drainTimeoutMs: drainTimeoutMs as number | undefined,
			signal: stop.signal,
		});
	} finally {
		process.off("SIGTERM", onSignal);
		process.off("SIGINT", onSignal);
	}
}

if (import.meta.main) {
	const code = await bridgeMain(process.argv.slice(2));
	// Client libraries may keep sockets or timers alive after a clean stop.
	process.exit(code);
}
