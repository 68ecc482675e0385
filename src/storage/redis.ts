/**
 * Redis access over the Upstash REST protocol: batch reads with MGET and version-guarded writes
 * through a Lua script. No policy here (timeouts and the breaker live in the Redis tier).
 */
import { Redis } from "@upstash/redis/cloudflare";

/**
 * Writes a cached record only when the copy Redis holds has a lower revision (or none), so an
 * older value can never overwrite a newer one whatever order writers arrive in.
 * Encoded records start with {"r":<rev>, which is what the pattern reads.
 * KEYS[1] = cache key; ARGV = rev, payload, ttl seconds.
 */
const GUARDED_SET = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local r = tonumber(string.match(cur, '^{"r":(%d+)'))
  if r and r >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1`;

export interface GuardedWrite {
	key: string;
	rev: number;
	payload: string;
	ttlSeconds: number;
}

export class RedisStore {
	private readonly redis: Redis;
	private readonly guardedSet;

	constructor(url: string, token: string) {
		// Retries would stretch a dead Redis into seconds of latency; the tier's breaker handles failure instead.
		// Values are our own JSON strings, so the client must not parse them.
		this.redis = new Redis({ url, token, retry: false, automaticDeserialization: false, enableTelemetry: false });
		this.guardedSet = this.redis.createScript<number>(GUARDED_SET);
	}

	/** One GET for one key, one MGET for many. */
	async getMany(keys: string[]): Promise<(string | null)[]> {
		if (keys.length === 1) return [await this.redis.get<string>(keys[0] as string)];
		return this.redis.mget<(string | null)[]>(...keys);
	}

	/** Version-guarded writes; concurrent calls are auto-pipelined into one request. Returns how many were written. */
	async guardedSetMany(writes: GuardedWrite[]): Promise<number> {
		const results = await Promise.all(
			writes.map((w) => this.guardedSet.exec([w.key], [String(w.rev), w.payload, String(Math.max(1, Math.ceil(w.ttlSeconds)))])),
		);
		return results.filter((r) => Number(r) === 1).length;
	}

	async ping(): Promise<void> {
		await this.redis.ping();
	}
}
