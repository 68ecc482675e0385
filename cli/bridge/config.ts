/** The bridge's config file (JSON or YAML): its schema, defaults, and errors that name the JSON path of the bad entry. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { DEFAULT_URL, devVarsKey } from "../context.ts";
import { withoutBom } from "../text.ts";
import { pointerProblem } from "./pointer.ts";

const pointer = z.string({ error: "must be a JSON Pointer (a string)" }).superRefine((text, ctx) => {
	const problem = pointerProblem(text);
	if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/**
 * A source's connection URL, checked for its scheme here so that a wrong one is a config error with
 * its path (exit 2), not a failure at start (or, for mqtt.js, a silent fallback to mqtt://). Only the
 * scheme is checked: the client libraries parse the rest, each in its own way.
 */
const sourceUrl = (schemes: readonly string[], example: string, also?: { test: (url: string) => boolean }) =>
	z
		.string()
		.min(1)
		.superRefine((url, ctx) => {
			const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
			if ((scheme && schemes.includes(scheme)) || also?.test(url)) return;
			const list = schemes.map((s) => `${s}://`);
			const names = list.length > 1 ? `${list.slice(0, -1).join(", ")} or ${list.at(-1)}` : list[0];
			ctx.addIssue({ code: "custom", message: `must be a URL starting with ${names}, e.g. "${example}"${scheme ? `, not ${scheme}:` : ""}` });
		});

const datasetName = z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "must be a dataset name: a lowercase identifier of up to 63 characters");
const positiveInt = (max = Number.MAX_SAFE_INTEGER) => z.number().int().min(1).max(max);

const map = z.strictObject({
	key: pointer,
	event_time: pointer.optional(),
	op: pointer.optional(),
	value: pointer.optional(),
});

/** Settings every source has. */
const common = {
	/** Names the source in metrics, logs and the default reject log path. Defaults to `<type>-<index>`. */
	name: z
		.string()
		.regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '_', '.' or '-'")
		.optional(),
	dataset: datasetName,
	map,
	/** NDJSON file that unmappable and refused messages are appended to. Default ./bridge-rejects-<name>.ndjson. */
	reject_log: z.string().min(1).optional(),
};

const natsSource = z.strictObject({
	type: z.literal("nats"),
	...common,
	servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
	stream: z.string().min(1),
	/** Filter subject of the durable consumer when the bridge creates it. */
	subject: z.string().min(1).optional(),
	durable: z.string().regex(/^[^.*>\s]+$/, "must be a consumer name (no '.', '*', '>' or spaces)"),
	/** ack_wait of the consumer the bridge creates; messages still waiting for Hotpath are kept alive with working(). */
	ack_wait_ms: positiveInt().default(60_000),
	/** max_ack_pending of the consumer the bridge creates: how many delivered messages may wait for their ack. */
	max_ack_pending: positiveInt().default(20_000),
	user: z.string().optional(),
	pass: z.string().optional(),
	token: z.string().optional(),
});

const redisSource = z.strictObject({
	type: z.literal("redis-streams"),
	...common,
	/** ioredis also takes a Unix socket path. */
	url: sourceUrl(["redis", "rediss"], "redis://127.0.0.1:6379/0", { test: (url) => url.startsWith("/") }),
	stream: z.string().min(1),
	group: z.string().min(1),
	/** Must stay the same across restarts: a restarted bridge first re-reads its own pending entries. */
	consumer: z.string().min(1),
	/** Where a new group starts: "0" (the whole stream) or "$" (only new entries). */
	start: z
		.string()
		.regex(/^(\$|\d{1,20}(-\d{1,20})?)$/, 'must be "$" (new entries only) or an entry id ("0" for the whole stream, MS or MS-SEQ)')
		.default("0"),
	/** Entries pending with another consumer for this long are claimed (XAUTOCLAIM). */
	claim_idle_ms: positiveInt().default(60_000),
	/** Entries per XREADGROUP. */
	count: positiveInt(10_000).default(1000),
	block_ms: positiveInt().default(1000),
});

const amqpSource = z.strictObject({
	type: z.literal("amqp"),
	...common,
	url: sourceUrl(["amqp", "amqps"], "amqp://guest:guest@127.0.0.1:5672"),
	queue: z.string().min(1),
	/** Unacknowledged deliveries the broker may hand out at once. */
	prefetch: positiveInt(65_535).default(2000),
	/** Rejected messages are nacked without requeue (to the queue's dead-letter exchange) instead of logged and acked. */
	dead_letter: z.boolean().default(false),
});

const mqttSource = z.strictObject({
	type: z.literal("mqtt"),
	...common,
	url: sourceUrl(["mqtt", "mqtts", "tcp", "tls", "ssl", "ws", "wss", "mqtt+unix", "mqtts+unix"], "mqtt://127.0.0.1:1883"),
	topic: z.string().min(1),
	/** Must stay the same across restarts: the broker keeps the session (and its queued messages) under it. */
	client_id: z.string().min(1),
	/** How long the broker keeps the session while the bridge is away (MQTT 5 Session Expiry Interval). */
	session_expiry_s: positiveInt(0xffffffff).default(7 * 24 * 3600),
	/** Receive Maximum: QoS 1 messages the broker may send before the bridge acknowledges them. */
	receive_maximum: positiveInt(65_535).default(1000),
	username: z.string().optional(),
	password: z.string().optional(),
});

const pgTable = z.union([
	z.string().min(1),
	z.strictObject({
		table: z.string().min(1),
		/** The dataset this table's rows go to; default: the source's dataset. */
		dataset: datasetName.optional(),
	}),
]);

const postgresSource = z.strictObject({
	type: z.literal("postgres"),
	name: common.name,
	/** Default dataset of the tables that name none. */
	dataset: datasetName.optional(),
	/** Optional here: the key defaults to the primary key, the value to the row, op and time come from the change. */
	map: z.strictObject({ key: pointer.optional(), value: pointer.optional() }).optional(),
	reject_log: common.reject_log,
	/** pg also takes socket: URLs and a Unix socket directory. */
	url: sourceUrl(["postgres", "postgresql", "socket"], "postgres://postgres@127.0.0.1:5432/db", { test: (url) => url.startsWith("/") }),
	tables: z.array(pgTable).min(1),
	slot: z.string().regex(/^[a-z0-9_]{1,63}$/, "must be a replication slot name: lowercase letters, digits and '_', up to 63"),
	publication: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "must be an identifier"),
	/** Copy each table's current rows first (once per slot). */
	snapshot: z.boolean().default(true),
	/** Where the bridge remembers whether the snapshot is done. Default ./bridge-state-<name>.json. */
	state_file: z.string().min(1).optional(),
	/** Rows per FETCH while copying the snapshot. */
	snapshot_fetch: positiveInt(100_000).default(5000),
});

const kafkaSource = z.strictObject({
	type: z.literal("kafka"),
	...common,
	brokers: z.array(z.string().min(1)).min(1),
	topic: z.string().min(1),
	group_id: z.string().min(1),
	client_id: z.string().default("hotpath-bridge"),
	/** Where a new consumer group starts. */
	from_beginning: z.boolean().default(true),
});

const source = z.discriminatedUnion("type", [natsSource, redisSource, amqpSource, mqttSource, postgresSource, kafkaSource]);

const configSchema = z
	.strictObject({
		target: z
			.strictObject({
				/** Default: HOTPATH_URL, else http://127.0.0.1:8787. */
				url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
				/** Default: HOTPATH_KEY. */
				key: z.string().min(1).optional(),
				/** Per POST attempt. */
				timeout_ms: positiveInt().default(30_000),
			})
			.default({ timeout_ms: 30_000 }),
		batch: z
			.strictObject({
				/** Events per POST (Hotpath takes up to 10,000 and 5 MiB). */
				max_events: positiveInt(10_000).default(1000),
				/** How long the first event of a batch waits for more. */
				max_wait_ms: z.number().int().min(0).default(50),
				/** POSTs in flight at once, over all sources. */
				max_in_flight: positiveInt(64).default(4),
				/** Messages a source may have received and not yet acknowledged; it stops pulling at this many. */
				max_pending: positiveInt().optional(),
			})
			.default({ max_events: 1000, max_wait_ms: 50, max_in_flight: 4 }),
		retry: z
			.strictObject({
				initial_ms: positiveInt().default(250),
				max_ms: positiveInt().default(30_000),
			})
			.default({ initial_ms: 250, max_ms: 30_000 }),
		sources: z.array(source).min(1, "needs at least one source"),
	})
	.superRefine((config, ctx) => {
		const seen = new Map<string, number>();
		config.sources.forEach((s, i) => {
			const name = s.name ?? `${s.type}-${i}`;
			const first = seen.get(name);
			if (first !== undefined) ctx.addIssue({ code: "custom", path: ["sources", i, "name"], message: `"${name}" is also the name of sources[${first}]` });
			seen.set(name, i);
			if (s.type === "postgres") {
				s.tables.forEach((t, j) => {
					if (!s.dataset && (typeof t === "string" || !t.dataset)) {
						ctx.addIssue({ code: "custom", path: ["sources", i, "tables", j], message: "names no dataset, and the source has no default dataset" });
					}
				});
			}
		});
	});

export type BridgeConfig = z.infer<typeof configSchema>;
export type SourceConfig = BridgeConfig["sources"][number];
export type NatsConfig = z.infer<typeof natsSource>;
export type RedisStreamsConfig = z.infer<typeof redisSource>;
export type AmqpConfig = z.infer<typeof amqpSource>;
export type MqttConfig = z.infer<typeof mqttSource>;
export type PostgresConfig = z.infer<typeof postgresSource>;
export type KafkaConfig = z.infer<typeof kafkaSource>;
export type MapConfig = z.infer<typeof map>;

/** A config that cannot be used; `problems` are `path: message` lines. */
export class ConfigError extends Error {
	readonly problems: string[];
	constructor(file: string, problems: string[]) {
		super(`${file}: invalid bridge config\n${problems.map((p) => `  ${p}`).join("\n")}`);
		this.problems = problems;
	}
}

/** `["sources", 1, "map", "key"]` -> `sources[1].map.key`. */
export function formatPath(path: readonly PropertyKey[]): string {
	let out = "";
	for (const part of path) {
		if (typeof part === "number") out += `[${part}]`;
		else out += out ? `.${String(part)}` : String(part);
	}
	return out || "(top level)";
}

/** The config with defaults applied, the key and URL resolved from the environment when the file has none. */
export interface ResolvedConfig extends BridgeConfig {
	target: BridgeConfig["target"] & { url: string; key: string };
}

/** Validates a parsed config document. Throws ConfigError naming every bad entry. */
/** The protocol of `url` ("http:"), or "" when it is not a URL. */
function urlProtocol(url: string): string {
	try {
		return new URL(url).protocol;
	} catch {
		return "";
	}
}

/** Where the CLI looks for .dev.vars: the current directory, then the repository the CLI is in. */
const DEV_VARS_DIRS = [process.cwd(), path.join(import.meta.dirname, "..", "..")];

export function parseConfig(
	doc: unknown,
	file = "config",
	env: NodeJS.ProcessEnv = process.env,
	devVarsDirs: readonly string[] = DEV_VARS_DIRS,
): ResolvedConfig {
	const result = configSchema.safeParse(doc);
	if (!result.success) {
		const problems = result.error.issues.map((issue) => {
			if (issue.code === "unrecognized_keys") {
				return `${formatPath(issue.path)}: unknown setting${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
			}
			if (issue.path.length === 0) return "(top level): the config must be a JSON object with target and sources";
			return `${formatPath(issue.path)}: ${issue.message}`;
		});
		throw new ConfigError(file, [...new Set(problems)]);
	}
	const config = result.data;
	// As for every verb (cli/context.ts): an empty variable is unset, and the key defaults to the admin key in .dev.vars.
	const key = config.target.key ?? (env.HOTPATH_KEY || devVarsDirs.map(devVarsKey).find((k) => k !== undefined));
	if (!key) throw new ConfigError(file, ["target.key: missing; put it in the config or set HOTPATH_KEY"]);
	const url = (config.target.url ?? (env.HOTPATH_URL || DEFAULT_URL)).replace(/\/+$/, "");
	if (config.target.url === undefined && !/^https?:$/.test(urlProtocol(url))) {
		throw new ConfigError(file, [`HOTPATH_URL: must be an http:// or https:// URL, not ${JSON.stringify(env.HOTPATH_URL)}`]);
	}
	return { ...config, target: { ...config.target, url, key } };
}

/** Reads a JSON or YAML config file (YAML when the name ends in .yaml/.yml, or when the text is not JSON). */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
	let text: string;
	try {
		text = readFileSync(file, "utf8");
	} catch (e) {
		throw new ConfigError(file, [`cannot read the file: ${(e as Error).message}`]);
	}
	text = withoutBom(text);
	let doc: unknown;
	try {
		doc = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
	} catch (jsonError) {
		if (/\.json$/i.test(file)) throw new ConfigError(file, [`not valid JSON: ${(jsonError as Error).message}`]);
		try {
			doc = parseYaml(text);
		} catch (yamlError) {
			throw new ConfigError(file, [`neither JSON nor YAML: ${(yamlError as Error).message}`]);
		}
	}
	return parseConfig(doc, file, env);
}

/** A source's name: its `name`, else `<type>-<index>`. */
export const sourceName = (s: SourceConfig, index: number): string => s.name ?? `${s.type}-${index}`;
