/**
 * `hotpath bridge`: runs every configured source through its pipeline into Hotpath until asked to
 * stop (then drains: stops pulling, finishes what is in flight, acks it) or until a fatal error.
 */
import { type ResolvedConfig, type SourceConfig, sourceName } from "./config.ts";
import { compileMap, type Mapper } from "./mapping.ts";
import { Slots, SourcePipeline } from "./pipeline.ts";
import { RejectLog } from "./rejects.ts";
import type { Delivery, Source } from "./sources/source.ts";
import { type StatusSnapshot, startStatusServer, statusLine } from "./status.ts";
import { FatalTargetError, HotpathTarget } from "./target.ts";

export interface RunOptions {
	/** Serve GET /metrics here (port 0: any free port, reported through onListening). */
	statusPort?: number;
	statusHost?: string;
	onListening?: (port: number) => void;
	/** How often the one-line status goes to the log; 0 for never. */
	statusIntervalMs?: number;
	/** How long a graceful stop may take to drain before the bridge gives up (its messages stay unacked). */
	drainTimeoutMs?: number;
	/** Aborting it stops the bridge gracefully. */
	signal?: AbortSignal;
	log?: (line: string) => void;
}

/** Exit codes: 0 stopped cleanly, 1 a fatal error (or a drain that timed out). Config errors (2) are found before this runs. */
export type ExitCode = 0 | 1;

const stamp = (line: string) => `${new Date().toISOString()} bridge: ${line}`;

/** Builds a source from its config; each client library is loaded only when a source uses it. */
async function createSource(config: SourceConfig, name: string): Promise<Source<Delivery>> {
	switch (config.type) {
		case "nats":
			return new (await import("./sources/nats.ts")).NatsSource(config);
		case "redis-streams":
			return new (await import("./sources/redis-streams.ts")).RedisStreamsSource(config);
		case "amqp":
			return new (await import("./sources/amqp.ts")).AmqpSource(config);
		case "mqtt":
			return new (await import("./sources/mqtt.ts")).MqttSource(config);
		case "postgres":
			return new (await import("./sources/postgres.ts")).PostgresSource(config, name);
		case "kafka":
			return new (await import("./sources/kafka.ts")).KafkaSource(config);
	}
}

/** Datasets a source writes to. */
const datasetsOf = (s: SourceConfig): string[] =>
	s.type === "postgres" ? s.tables.map((t) => (typeof t === "string" ? s.dataset : (t.dataset ?? s.dataset)) as string) : [s.dataset];

const withTimeout = <T>(p: Promise<T>, ms: number, fallback: T): Promise<T> =>
	Promise.race([p, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms).unref())]);

export async function runBridge(config: ResolvedConfig, opts: RunOptions = {}): Promise<ExitCode> {
	const log = opts.log ?? ((line: string) => process.stderr.write(`${stamp(line)}\n`));
	const started = Date.now();
	let retries = 0;
	let lastRetryLog = 0;
	const target = new HotpathTarget({
		url: config.target.url,
		key: config.target.key,
		timeoutMs: config.target.timeout_ms,
		retry: { initialMs: config.retry.initial_ms, maxMs: config.retry.max_ms },
		onRetry: (reason, delay) => {
			retries++;
			// While Hotpath is down, one line every 10 s is enough.
			if (Date.now() - lastRetryLog < 10_000) return;
			lastRetryLog = Date.now();
			log(`Hotpath not answering (${reason}); retrying in ${(delay / 1000).toFixed(1)} s, acknowledging nothing meanwhile`);
		},
		onRecovered: () => {
			lastRetryLog = 0;
			log("Hotpath answers again");
		},
	});

	let fatal: Error | undefined;
	let wakeMain: () => void = () => {};
	const mainWait = new Promise<void>((resolve) => {
		wakeMain = resolve;
	});
	const onFatal = (error: Error) => {
		fatal ??= error;
		wakeMain();
	};

	const slots = new Slots(config.batch.max_in_flight);
	const maxPending = config.batch.max_pending ?? config.batch.max_events * (config.batch.max_in_flight + 2);
	const runs: { name: string; type: string; source: Source<Delivery>; pipeline: SourcePipeline<Delivery>; rejects: RejectLog; mapper: Mapper }[] = [];
	for (const [i, sc] of config.sources.entries()) {
		const name = sourceName(sc, i);
		const source = await createSource(sc, name);
		const rejects = new RejectLog(sc.reject_log ?? `bridge-rejects-${name}.ndjson`, name);
		const mapper = compileMap(sc.map ?? {}, sc.type === "postgres" ? undefined : sc.dataset);
		const pipeline = new SourcePipeline<Delivery>({
			name,
			source,
			mapper,
			target,
			slots,
			rejectLog: rejects,
			maxEvents: config.batch.max_events,
			maxWaitMs: config.batch.max_wait_ms,
			maxPending,
			onFatal: (e) => onFatal(e instanceof FatalTargetError ? e : new Error(`${name}: ${e.message}`)),
			log,
		});
		runs.push({ name, type: sc.type, source, pipeline, rejects, mapper });
	}

	const snapshot = (): StatusSnapshot => {
		const cpu = process.cpuUsage();
		return {
			uptime_s: Math.round((Date.now() - started) / 1000),
			process: {
				cpu_user_ms: Math.round(cpu.user / 1000),
				cpu_system_ms: Math.round(cpu.system / 1000),
				rss_mb: Math.round(process.memoryUsage.rss() / 1048576),
			},
			target: { url: target.url, failing: target.failing, retries },
			sources: Object.fromEntries(runs.map((r) => [r.name, { type: r.type, ...r.pipeline.stats }])),
		};
	};
	const refreshLag = async () => {
		await Promise.all(
			runs.map(async (r) => {
				r.pipeline.stats.lag = await withTimeout(
					r.source.lag().catch(() => null),
					2000,
					null,
				);
			}),
		);
	};

	const onAbort = () => wakeMain();
	opts.signal?.addEventListener("abort", onAbort, { once: true });
	let status: Awaited<ReturnType<typeof startStatusServer>> | undefined;
	let ticker: NodeJS.Timeout | undefined;
	try {
		// A missing dataset or a refused key is a config error: found before anything is pulled.
		const datasets = [...new Set(config.sources.flatMap(datasetsOf))];
		await Promise.race([Promise.all(datasets.map((d) => target.checkDataset(d))), mainWait]);
		if (fatal || opts.signal?.aborted) return await finish();
		for (const [i, sc] of config.sources.entries()) {
			const fields = sc.type === "postgres" ? undefined : target.fieldsOf(sc.dataset);
			if (fields) runs[i]?.mapper.keepFields(fields);
		}

		// A reject log that cannot be written is a config error too: said now, not a crash at the first reject.
		for (const r of runs) {
			await r.rejects.check().catch((e: Error) => {
				throw new Error(`${r.name}: reject_log ${r.rejects.file} cannot be written: ${e.message}`);
			});
		}

		if (opts.statusPort !== undefined) {
			status = await startStatusServer(opts.statusHost ?? "127.0.0.1", opts.statusPort, snapshot);
			opts.onListening?.(status.port);
			log(`metrics on http://${opts.statusHost ?? "127.0.0.1"}:${status.port}/metrics`);
		}
		for (const r of runs) {
			// Client libraries' errors rarely say what they were connecting to ("Connection is closed."): name the source.
			await r.source.start(r.pipeline.sink).catch((e: Error) => {
				throw new Error(`${r.name} (${r.type}) could not start: ${e.message}`);
			});
			log(`${r.name}: started (${r.type} -> ${target.url})`);
			if (fatal || opts.signal?.aborted) return await finish();
		}
		const interval = opts.statusIntervalMs ?? 5000;
		let ticking = false;
		ticker = setInterval(
			async () => {
				if (ticking) return;
				ticking = true;
				await refreshLag();
				ticking = false;
				if (interval > 0) log(statusLine(snapshot()));
			},
			interval > 0 ? interval : 5000,
		);
		await mainWait;
		return await finish();
	} catch (e) {
		onFatal(e as Error);
		return await finish();
	} finally {
		opts.signal?.removeEventListener("abort", onAbort);
		clearInterval(ticker);
		await status?.close();
	}

	async function finish(): Promise<ExitCode> {
		if (fatal) {
			log(`fatal: ${fatal.message}`);
			log("stopping without acknowledging what is in flight (it will be delivered again)");
			await Promise.all(
				runs.map((r) =>
					withTimeout(
						r.source.close().catch(() => {}),
						5000,
						undefined,
					),
				),
			);
			await Promise.all(runs.map((r) => r.rejects.close()));
			return 1;
		}
		log("stopping: no more pulls, finishing what is in flight");
		const drained = (async () => {
			await Promise.all(
				runs.map(async (r) => {
					r.pipeline.beginStop();
					await r.source.stop();
				}),
			);
			await Promise.all(runs.map((r) => r.pipeline.drain()));
			return true;
		})();
		const ok = await withTimeout(drained, opts.drainTimeoutMs ?? 60_000, false);
		if (fatal) return finish();
		await refreshLag();
		log(statusLine(snapshot()));
		await Promise.all(
			runs.map((r) =>
				withTimeout(
					r.source.close().catch((e) => log(`${r.name}: close: ${(e as Error).message}`)),
					10_000,
					undefined,
				),
			),
		);
		await Promise.all(runs.map((r) => r.rejects.close()));
		if (!ok) {
			const left = runs.reduce((n, r) => n + r.pipeline.stats.pending, 0);
			log(`gave up draining after ${(opts.drainTimeoutMs ?? 60_000) / 1000} s: ${left} message(s) left unacknowledged; their sources will deliver them again`);
			return 1;
		}
		log("stopped");
		return 0;
	}
}
