/** The per-isolate services: built once from the environment and shared by every request and queue batch. */
import { drizzle } from "drizzle-orm/d1";
import { KeyStore } from "./auth/keys";
import { RateLimiter } from "./auth/rate-limit";
import { ControlVersion } from "./control/version";
import { type Env, parseSettings, type Settings } from "./env";
import { log } from "./observability/log";
import { Registry } from "./registry/registry";
import { CircuitBreaker } from "./serving/breaker";
import { ChangeWatch } from "./serving/changes";
import { D1Tier } from "./serving/d1-tier";
import { KvTier } from "./serving/kv-tier";
import { L0Cache } from "./serving/l0";
import { TieredReader } from "./serving/reader";
import { RedisTier } from "./serving/redis-tier";
import { TierStats } from "./serving/stats";
import { TIER_ORDER, type Tier } from "./serving/tier";
import { RedisStore } from "./storage/redis";

export interface Services {
	env: Env;
	settings: Settings;
	registry: Registry;
	keys: KeyStore;
	rateLimiter: RateLimiter;
	reader: TieredReader;
	stats: TierStats;
	/** The hot tier, or null when no Upstash URL and token are configured (the tier is "off"). */
	redis: RedisTier | null;
	kv: KvTier;
}

let cached: { env: Env; services: Services } | null = null;

/** Services for `env`, built on first use. Env objects are stable per isolate, so this runs once. */
export function servicesFor(env: Env): Services {
	// The runtime may hand each request a new env object over the same bindings; reuse the services then.
	if (cached && (cached.env === env || (cached.env.DB === env.DB && cached.env.RECORDS_KV === env.RECORDS_KV))) return cached.services;
	const settings = parseSettings(env);
	const db = drizzle(env.DB);
	const control = new ControlVersion(db, settings.CONTROL_CHECK_MS);
	const stats = new TierStats();
	const redis =
		env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN
			? new RedisTier(
					new RedisStore(env.UPSTASH_REDIS_REST_URL, env.UPSTASH_REDIS_REST_TOKEN),
					new CircuitBreaker(settings.REDIS_BREAKER_THRESHOLD, settings.REDIS_COOLDOWN_MS),
					settings.REDIS_MAX_LAG_SECONDS * 1000,
					settings.NEGATIVE_TTL_SECONDS,
					settings.REDIS_TIMEOUT_MS,
					settings.REDIS_MAX_TTL_SECONDS,
				)
			: null;
	if (!redis) log.warn("hot tier off: UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN not set");
	// The change counters live in Redis next to the copies whose writes bump them.
	const changes =
		redis && settings.CHANGE_POLL_MS > 0
			? new ChangeWatch((datasets) => redis.readChanges(datasets), settings.CHANGE_POLL_MS, redis.maxLagMs, redis.maxTtlSeconds * 1000)
			: undefined;
	const l0 = new L0Cache(
		settings.L0_MAX_ENTRIES,
		settings.L0_TTL_SECONDS * 1000,
		(settings.L0_TTL_SECONDS + settings.L0_SWR_SECONDS) * 1000,
		settings.NEGATIVE_TTL_SECONDS * 1000,
		changes,
	);
	const kv = new KvTier(env.RECORDS_KV, settings.KV_MAX_LAG_SECONDS * 1000);
	const below: Record<Tier["name"], Tier | null> = { redis, kv, d1: new D1Tier(env.DB) };
	const tiers = TIER_ORDER.flatMap((name) => (name === "l0" ? [] : below[name] ? [below[name]] : []));
	const services: Services = {
		env,
		settings,
		registry: new Registry(db, control),
		keys: new KeyStore(db, control, env.HOTPATH_ADMIN_KEY),
		rateLimiter: new RateLimiter(env.KEY_RATE_LIMITER),
		reader: new TieredReader(l0, tiers, stats, { redis: settings.REDIS_TIMEOUT_MS, kv: settings.KV_TIMEOUT_MS, d1: settings.D1_TIMEOUT_MS }),
		stats,
		redis,
		kv,
	};
	cached = { env, services };
	return services;
}
