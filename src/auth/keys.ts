/** API keys: generated once, stored as SHA-256 hashes in D1, looked up through bounded isolate caches. */
import { and, desc, eq, gte, isNull, lt } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { ControlVersion } from "../control/version";
import { waitWhile } from "../control/wait";
import { MAX_TIME_MS } from "../input";
import { apiKeys } from "../storage/schema";

export const SCOPES = ["read", "write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

export interface RateLimitSpec {
	requests: number;
	period_seconds: number;
}

export interface Principal {
	id: string;
	name: string;
	scopes: readonly Scope[];
	/** Datasets the key may touch, or null for all. */
	datasets: readonly string[] | null;
	/** The key's own request budget, or null for none. */
	rateLimit: RateLimitSpec | null;
	/** Epoch ms after which the key no longer authenticates, or null. */
	expiresAt: number | null;
}

export interface KeyInfo {
	id: string;
	name: string;
	scopes: readonly Scope[];
	datasets: readonly string[] | null;
	rate_limit: RateLimitSpec | null;
	expires_at: string | null;
	created_at: string;
	revoked_at: string | null;
}

const encoder = new TextEncoder();

export async function sha256Hex(s: string): Promise<string> {
	const d = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
	let hex = "";
	for (const b of d) hex += b.toString(16).padStart(2, "0");
	return hex;
}

function randomToken(bytes: number): string {
	const buf = crypto.getRandomValues(new Uint8Array(bytes));
	return btoa(String.fromCharCode(...buf))
		.replaceAll("+", "-")
		.replaceAll("/", "_")
		.replace(/=+$/, "");
}

/**
 * Constant-time comparison, so the bootstrap key cannot be guessed character by character from
 * timings. Only the length may leak. It runs on every request, so it compares UTF-16 code units
 * rather than encoding both strings.
 */
function timingSafeEqual(a: string, b: string): boolean {
	if (a.length !== b.length) return false;
	let diff = 0;
	for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
	return diff === 0;
}

const BOOTSTRAP: Principal = {
	id: "bootstrap",
	name: "bootstrap admin (HOTPATH_ADMIN_KEY)",
	scopes: ["read", "write", "admin"],
	datasets: null,
	rateLimit: null,
	expiresAt: null,
};

type KeyRow = typeof apiKeys.$inferSelect;

const toPrincipal = (r: KeyRow): Principal => ({
	id: r.id,
	name: r.name,
	scopes: JSON.parse(r.scopes) as Scope[],
	datasets: r.datasets ? (JSON.parse(r.datasets) as string[]) : null,
	rateLimit: r.rateLimit ? (JSON.parse(r.rateLimit) as RateLimitSpec) : null,
	expiresAt: r.expiresAt,
});

// Rows written before expires_at was bounded may hold a time past the last one a Date holds:
// listed as that last time (the key never expires), never as an error that hides every other key.
const isoTime = (ms: number): string => new Date(Math.max(-MAX_TIME_MS, Math.min(MAX_TIME_MS, ms))).toISOString();

const toInfo = (r: KeyRow): KeyInfo => {
	const p = toPrincipal(r);
	return {
		id: p.id,
		name: p.name,
		scopes: p.scopes,
		datasets: p.datasets,
		rate_limit: p.rateLimit,
		expires_at: p.expiresAt === null ? null : isoTime(p.expiresAt),
		created_at: isoTime(r.createdAt),
		revoked_at: r.revokedAt === null ? null : isoTime(r.revokedAt),
	};
};

/** Hex digits of a key hash that group keys for lookups: 4,096 groups. */
const PREFIX_LENGTH = 3;
/** How long one group's lookup answers for every token in it (found or not). */
const PREFIX_TTL_MS = 1000;
/** How long a token waits for another request's load of its group before querying itself. */
const LOAD_WAIT_MS = 2000;

export class KeyStore {
	/**
	 * Known keys by presented token, so a cached key costs no hashing. Only tokens that are keys
	 * enter it: unknown tokens, however many, cannot evict a known key. Bounded: past 10,000 the
	 * oldest goes (a deployment with more keys in use than that pays a lookup now and then).
	 */
	private readonly known = new Map<string, Principal>();
	private static readonly MAX_KNOWN = 10_000;
	/**
	 * Per hash prefix: every key whose hash starts with it, as D1 held them at `at`. A token not
	 * known is answered from here, so unknown tokens cost at most one D1 query per prefix per
	 * second, however many are tried. Bounded by the number of prefixes.
	 */
	private readonly groups = new Map<string, { at: number; byHash: Map<string, Principal | null> }>();
	/** Prefixes whose group a request of this isolate is loading now. */
	private readonly loading = new Map<string, { at: number }>();

	constructor(
		private readonly db: DrizzleD1Database,
		private readonly control: ControlVersion,
		private readonly adminKey: string | undefined,
		private readonly now: () => number = Date.now,
	) {
		control.onChange(() => {
			this.known.clear();
			this.groups.clear();
		});
	}

	/**
	 * The principal of a token this isolate already knows, while the caches are current; undefined
	 * when authenticate() must decide (an unknown token, or a version check due). No await, for the
	 * hottest reads.
	 */
	knownPrincipal(token: string): Principal | undefined {
		if (this.adminKey && timingSafeEqual(token, this.adminKey)) return BOOTSTRAP;
		return this.control.isCurrent() ? this.known.get(token) : undefined;
	}

	/** The principal a bearer token stands for, or null for an unknown or revoked key. Expiry is the caller's to check. */
	async authenticate(token: string): Promise<Principal | null> {
		if (this.adminKey && timingSafeEqual(token, this.adminKey)) return BOOTSTRAP;
		await this.control.ensureCurrent();
		const hit = this.known.get(token);
		if (hit) return hit;
		const hash = await sha256Hex(token);
		const prefix = hash.slice(0, PREFIX_LENGTH);
		const now = this.now();
		let group = this.groups.get(prefix);
		if (!group || now - group.at >= PREFIX_TTL_MS) {
			// Another request of this isolate is loading this group: tokens arriving together (a burst of
			// guesses crafted to share a prefix) wait for it on a timer, rather than each query D1. Its
			// promise is not awaited: that is unsafe in workerd.
			// A load in flight past that bound is taken as lost (with its cancelled request), never waited for again.
			const inFlight = () => {
				const l = this.loading.get(prefix);
				return l !== undefined && this.now() - l.at < LOAD_WAIT_MS;
			};
			if (inFlight()) await waitWhile(inFlight, LOAD_WAIT_MS);
			group = this.groups.get(prefix);
			if (!group || this.now() - group.at >= PREFIX_TTL_MS) {
				const mark = { at: this.now() };
				this.loading.set(prefix, mark);
				try {
					// Noted before the read: a load that a change (a revocation) overtook is used once, never kept.
					const epoch = this.control.epoch;
					// Every hash with this prefix sorts between the prefix and the prefix followed by "g".
					const rows = await this.db
						.select()
						.from(apiKeys)
						.where(and(gte(apiKeys.keyHash, prefix), lt(apiKeys.keyHash, `${prefix}g`)))
						.all();
					group = { at: now, byHash: new Map(rows.map((r) => [r.keyHash, r.revokedAt === null ? toPrincipal(r) : null])) };
					if (this.control.epoch !== epoch) return group.byHash.get(hash) ?? null;
					this.groups.set(prefix, group);
				} finally {
					if (this.loading.get(prefix) === mark) this.loading.delete(prefix);
				}
			}
		}
		const principal = group.byHash.get(hash) ?? null;
		if (principal) {
			this.known.set(token, principal);
			if (this.known.size > KeyStore.MAX_KNOWN) this.known.delete(this.known.keys().next().value as string);
		}
		return principal;
	}

	/** Creates a key. The secret is returned here once and never again. */
	async create(
		input: { name: string; scopes: Scope[]; datasets: string[] | null; rateLimit: RateLimitSpec | null; expiresAt: number | null },
		now = Date.now(),
	): Promise<{ key: string; info: KeyInfo }> {
		const id = `key_${randomToken(9)}`;
		const key = `hp_${randomToken(24)}`;
		const row: KeyRow = {
			id,
			name: input.name,
			keyHash: await sha256Hex(key),
			scopes: JSON.stringify(input.scopes),
			datasets: input.datasets ? JSON.stringify(input.datasets) : null,
			rateLimit: input.rateLimit ? JSON.stringify(input.rateLimit) : null,
			expiresAt: input.expiresAt,
			createdAt: now,
			revokedAt: null,
		};
		await this.db.batch([this.db.insert(apiKeys).values(row), this.control.bumpStatement()]);
		this.control.invalidate();
		return { key, info: toInfo(row) };
	}

	/** One key's details, revoked or not, or null. */
	async get(id: string): Promise<KeyInfo | null> {
		const row = await this.db.select().from(apiKeys).where(eq(apiKeys.id, id)).get();
		return row ? toInfo(row) : null;
	}

	/** Revokes a key. Returns false when no such active key exists. */
	async revoke(id: string, now = Date.now()): Promise<boolean> {
		const [res] = await this.db.batch([
			this.db
				.update(apiKeys)
				.set({ revokedAt: now })
				.where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
				.returning({ id: apiKeys.id }),
			this.control.bumpStatement(),
		]);
		this.control.invalidate();
		return res.length > 0;
	}

	async list(includeRevoked = false): Promise<KeyInfo[]> {
		const q = this.db.select().from(apiKeys);
		const rows = await (includeRevoked ? q : q.where(isNull(apiKeys.revokedAt))).orderBy(desc(apiKeys.createdAt)).all();
		return rows.map(toInfo);
	}
}
