/**
 * Redis access over the Upstash REST protocol: batch reads with MGET and version-guarded writes
 * through a Lua script. No policy here (timeouts and the breaker live in the Redis tier).
 */
import { Redis } from "@upstash/redis/cloudflare";

/**
 * Writes a cached record only when the copy Redis holds has a lower revision (or none), so an
 * older value can never overwrite a newer one whatever order writers arrive in.
 * Encoded records start with {"r":<rev>, which is what the pattern reads. A key that holds no
 * string (GET fails on it: WRONGTYPE) holds no copy, and is replaced.
 * KEYS[1] = cache key; ARGV = rev, payload, ttl seconds.
 *
 * A write that carries a change (the consumer's, after a D1 commit) also names its dataset's change
 * counters: KEYS[2] = the counter hash, ARGV[4] = the key's bucket, ARGV[5] = an epoch for a hash
 * that does not exist yet. The bucket is bumped whether or not the copy lands: a reader's fill may
 * have put this revision in Redis first, and the change must be counted all the same.
 *
 * ARGV[6] = '1' marks a write of what D1 holds now, as a rebuild's refill reads it: it also replaces
 * a copy of the same revision whose text differs. Hotpath never writes two contents under one
 * revision, so only a row edited directly in D1 (wrangler d1 execute) differs that way, and the
 * refill is how such an edit reaches the caches. Other writes keep the strict guard.
 */
const GUARDED_SET = `
if KEYS[2] then
  redis.call('HSETNX', KEYS[2], 'epoch', ARGV[5])
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
end
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'string' then
  local r = tonumber(string.match(cur, '^{"r":(%d+)'))
  local rev = tonumber(ARGV[1])
  if r and (r > rev or (r == rev and (ARGV[6] ~= '1' or cur == ARGV[2]))) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1`;

/**
 * Bounds on one pipeline request: Upstash refuses requests over 10 MB, and 500 records with
 * 4096-dim vectors come to about 40 MB. So writes are split by count and by bytes; a request
 * carries at most this many commands and (a single larger record aside) this many payload bytes.
 */
export const PIPELINE_COMMANDS = 500;
export const PIPELINE_BYTES = 1024 * 1024;

/** Splits writes into pipeline requests under PIPELINE_COMMANDS and PIPELINE_BYTES (keys and payloads, in UTF-16 units). */
export function chunkWrites<W extends { key: string; payload: string }>(
	writes: readonly W[],
	maxCommands = PIPELINE_COMMANDS,
	maxBytes = PIPELINE_BYTES,
): W[][] {
	const chunks: W[][] = [];
	let cur: W[] = [];
	let bytes = 0;
	for (const w of writes) {
		const size = w.key.length + w.payload.length;
		if (cur.length && (cur.length >= maxCommands || bytes + size > maxBytes)) {
			chunks.push(cur);
			cur = [];
			bytes = 0;
		}
		cur.push(w);
		bytes += size;
	}
	if (cur.length) chunks.push(cur);
	return chunks;
}

export interface GuardedWrite {
	key: string;
	rev: number;
	payload: string;
	ttlSeconds: number;
	/** For a write that carries a change: the dataset's counter hash and the key's bucket in it. */
	change?: { counters: string; bucket: number };
	/** A copy of what D1 holds now (a rebuild's refill): replaces a different copy of the same revision too. Needs `change`. */
	fromD1?: boolean;
}

/** A dataset's change counters as read: the hash's epoch and each bucket's count (absent = 0). */
export interface ChangeCounts {
	epoch: string;
	counts: Map<number, number>;
}

export class RedisStore {
	private readonly redis: Redis;
	private sha: string | null = null;

	constructor(url: string, token: string) {
		this.redis = new Redis({
			url,
			token,
			// Retries would stretch a dead Redis into seconds of latency; the tier's breaker handles failure instead.
			retry: false,
			// Values are our own JSON strings, so the client must not parse them.
			automaticDeserialization: false,
			// Values are UTF-8 JSON text, which JSON responses carry as is; base64 (the default, for
			// binary safety) would make the client decode every value in JS.
			responseEncoding: false,
			// Auto-pipelining would put commands of concurrent requests into one fetch made by one of
			// them; workerd forbids a request from using another request's I/O. Batches are explicit here.
			enableAutoPipelining: false,
			enableTelemetry: false,
		});
	}

	/**
	 * One MGET, for one key as for many: MGET answers nil for a key that holds no string, where GET
	 * fails the call (WRONGTYPE), which would count as a Redis failure on every read of that key.
	 */
	async getMany(keys: string[]): Promise<(string | null)[]> {
		return this.redis.mget<(string | null)[]>(...keys);
	}

	/** Version-guarded writes in one pipeline request. Returns how many were written. */
	async guardedSetMany(writes: GuardedWrite[]): Promise<number> {
		this.sha ??= await this.redis.scriptLoad(GUARDED_SET);
		try {
			return await this.runGuarded(this.sha, writes);
		} catch (e) {
			// A restarted Redis has lost its scripts: load it again, once.
			if (!String(e).includes("NOSCRIPT")) throw e;
			this.sha = await this.redis.scriptLoad(GUARDED_SET);
			return this.runGuarded(this.sha, writes);
		}
	}

	private async runGuarded(sha: string, writes: GuardedWrite[]): Promise<number> {
		const chunks = chunkWrites(writes);
		// The epoch a counter hash gets if one of these writes creates it: new for every call, so a
		// hash that was flushed or evicted and then recreated never repeats an epoch and its counts.
		const epoch = crypto.randomUUID();
		const written = await Promise.all(
			chunks.map(async (chunk) => {
				const p = this.redis.pipeline();
				for (const w of chunk) {
					const ttl = String(Math.max(1, Math.ceil(w.ttlSeconds)));
					if (w.change) p.evalsha(sha, [w.key, w.change.counters], [String(w.rev), w.payload, ttl, String(w.change.bucket), epoch, w.fromD1 ? "1" : "0"]);
					else p.evalsha(sha, [w.key], [String(w.rev), w.payload, ttl]);
				}
				const results = (await p.exec()) as unknown[];
				return results.filter((r) => Number(r) === 1).length;
			}),
		);
		return written.reduce((a, b) => a + b, 0);
	}

	/**
	 * Deletes keys, PIPELINE_COMMANDS keys per request, the requests sent together. Returns how
	 * many existed. With `change` (a rebuild's drop), each key's bucket in that counter hash
	 * (`buckets[i]` for `keys[i]`) is bumped after the DEL, in the same pipeline, so L0 copies taken
	 * before the drop reload.
	 */
	async deleteMany(keys: readonly string[], change?: { counters: string; buckets: readonly number[] }): Promise<number> {
		const chunks: number[] = [];
		for (let i = 0; i < keys.length; i += PIPELINE_COMMANDS) chunks.push(i);
		// Chunks go out together: a consumer batch that created thousands of keys drops their cached misses in one round trip's time.
		const counts = await Promise.all(
			chunks.map(async (i) => {
				const chunk = keys.slice(i, i + PIPELINE_COMMANDS);
				if (!change) return this.redis.del(...chunk);
				const p = this.redis.pipeline();
				p.del(...chunk);
				p.hsetnx(change.counters, "epoch", crypto.randomUUID());
				for (const b of new Set(change.buckets.slice(i, i + PIPELINE_COMMANDS))) p.hincrby(change.counters, String(b), 1);
				return Number(((await p.exec()) as unknown[])[0]);
			}),
		);
		return counts.reduce((a, b) => a + b, 0);
	}

	/**
	 * The change counters of each hash: one pipeline of HGETALLs, reads only, so a Global database
	 * answers it from the nearest read region (a write would go to the primary region, every poll).
	 * A hash that does not exist yet is then created with a new epoch and read again, once in its
	 * life, so counts read now and later compare under one epoch even when no change has been
	 * counted (data loaded before counters existed). Null when the hash vanished in between.
	 */
	async readCounters(hashes: readonly string[]): Promise<(ChangeCounts | null)[]> {
		if (!hashes.length) return [];
		const p = this.redis.pipeline();
		for (const h of hashes) p.hgetall(h);
		const read = (await p.exec()) as unknown[];
		const out = hashes.map((_, i) => parseCounters(read[i]));
		const missing = hashes.flatMap((h, i) => (out[i] ? [] : [{ h, i }]));
		if (!missing.length) return out;
		const epoch = crypto.randomUUID();
		const q = this.redis.pipeline();
		for (const { h } of missing) {
			q.hsetnx(h, "epoch", epoch);
			q.hgetall(h);
		}
		const made = (await q.exec()) as unknown[];
		for (const [j, { i }] of missing.entries()) out[i] = parseCounters(made[2 * j + 1]);
		return out;
	}

	async ping(): Promise<void> {
		await this.redis.ping();
	}
}

/** HGETALL's answer (a flat array, or the client's object) as counters; null without an epoch. */
function parseCounters(raw: unknown): ChangeCounts | null {
	const entries: [string, unknown][] = [];
	if (Array.isArray(raw)) for (let i = 0; i + 1 < raw.length; i += 2) entries.push([String(raw[i]), raw[i + 1]]);
	else if (raw && typeof raw === "object") entries.push(...Object.entries(raw));
	let epoch: string | undefined;
	const counts = new Map<number, number>();
	for (const [field, value] of entries) {
		if (field === "epoch") epoch = String(value);
		else counts.set(Number(field), Number(value));
	}
	return epoch === undefined ? null : { epoch, counts };
}
