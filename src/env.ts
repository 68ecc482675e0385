/** The worker's bindings and settings, parsed once per isolate with zod so a bad deploy fails loudly. */
import * as z from "zod";

/**
 * Bindings and vars come from wrangler.toml through `wrangler types` (worker-configuration.d.ts).
 * Added here: secrets, and settings that have defaults and so are optional in wrangler.toml.
 */
export interface Env extends Omit<Cloudflare.Env, "EVENTS_QUEUE" | "KEY_RATE_LIMITER"> {
	EVENTS_QUEUE: Queue<unknown>;
	/** Workers Rate Limiting binding: a per-location ceiling behind every key's own rate_limit. Optional. */
	KEY_RATE_LIMITER?: RateLimit;
	HOTPATH_ADMIN_KEY?: string;
	UPSTASH_REDIS_REST_URL?: string;
	UPSTASH_REDIS_REST_TOKEN?: string;
	L0_SWR_SECONDS?: string;
	NEGATIVE_TTL_SECONDS?: string;
	KV_TIMEOUT_MS?: string;
	D1_TIMEOUT_MS?: string;
	REDIS_TIMEOUT_MS?: string;
	REDIS_BREAKER_THRESHOLD?: string;
	REDIS_COOLDOWN_MS?: string;
	REDIS_MAX_TTL_SECONDS?: string;
	REDIS_MAX_LAG_SECONDS?: string;
	CHANGE_POLL_MS?: string;
	HEALTH_CACHE_MS?: string;
}

/** Hono's environment type for every router of the app. */
export type AppEnv = { Bindings: Env };

const num = (def: number) => z.coerce.number().nonnegative().default(def);

const settingsSchema = z.object({
	L0_TTL_SECONDS: num(5),
	L0_MAX_ENTRIES: z.coerce.number().int().positive().default(10_000),
	L0_SWR_SECONDS: num(10),
	NEGATIVE_TTL_SECONDS: num(2),
	KV_TIMEOUT_MS: num(1000),
	D1_TIMEOUT_MS: num(5000),
	KV_MAX_LAG_SECONDS: num(60),
	CONTROL_CHECK_MS: num(1000),
	REDIS_TIMEOUT_MS: num(100),
	REDIS_BREAKER_THRESHOLD: z.coerce.number().int().positive().default(3),
	REDIS_COOLDOWN_MS: num(2000),
	REDIS_MAX_TTL_SECONDS: z.coerce.number().int().positive().default(3600),
	REDIS_MAX_LAG_SECONDS: num(1),
	/** How often an isolate reads Redis's change counters to keep unchanged L0 copies fresh (0: never; src/serving/changes.ts). */
	CHANGE_POLL_MS: num(1000),
	/** How far ahead of the receiving clock an event_time may be. */
	MAX_FUTURE_SKEW_SECONDS: num(300),
	/** How long /healthz reuses one probe of the backends. */
	HEALTH_CACHE_MS: num(2000),
	/** The queues this worker consumes, by name: dispatch never guesses from a name's shape. */
	EVENTS_QUEUE_NAME: z.string().min(1).default("hotpath-events"),
	DEAD_LETTER_QUEUE_NAME: z.string().min(1).default("hotpath-events-dlq"),
});

export type Settings = z.infer<typeof settingsSchema>;

export class ConfigError extends Error {
	override name = "ConfigError";
}

/** Validates bindings and settings. Throws ConfigError naming what is missing or wrong. */
export function parseSettings(env: Env): Settings {
	const missing = (["DB", "RECORDS_KV", "EVENTS_QUEUE"] as const).filter((b) => !env[b]);
	if (missing.length) throw new ConfigError(`missing bindings: ${missing.join(", ")} (see wrangler.toml)`);
	const parsed = settingsSchema.safeParse(env);
	if (!parsed.success) {
		throw new ConfigError(`bad settings: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
	}
	if (parsed.data.EVENTS_QUEUE_NAME === parsed.data.DEAD_LETTER_QUEUE_NAME) {
		throw new ConfigError("EVENTS_QUEUE_NAME and DEAD_LETTER_QUEUE_NAME must differ");
	}
	return parsed.data;
}
