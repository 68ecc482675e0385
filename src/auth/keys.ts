/** API keys: generated once, stored as SHA-256 hashes in D1, looked up through an isolate cache. */
import { and, desc, eq, isNull } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { ControlVersion } from "../control/version";
import { apiKeys } from "../storage/schema";

export const SCOPES = ["read", "write", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
	id: string;
	name: string;
	scopes: readonly Scope[];
	/** Datasets the key may touch, or null for all. */
	datasets: readonly string[] | null;
}

export interface KeyInfo extends Principal {
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

const BOOTSTRAP: Principal = { id: "bootstrap", name: "bootstrap admin (HOTPATH_ADMIN_KEY)", scopes: ["read", "write", "admin"], datasets: null };

export class KeyStore {
	// Keyed by the presented token, so a cached key costs no hashing. Emptied when the control version moves.
	private readonly cache = new Map<string, Principal | null>();
	private static readonly MAX_CACHED = 10_000;

	constructor(
		private readonly db: DrizzleD1Database,
		private readonly control: ControlVersion,
		private readonly adminKey: string | undefined,
	) {
		control.onChange(() => this.cache.clear());
	}

	/** The principal a bearer token stands for, or null for an unknown or revoked key. */
	async authenticate(token: string): Promise<Principal | null> {
		if (this.adminKey && timingSafeEqual(token, this.adminKey)) return BOOTSTRAP;
		await this.control.ensureCurrent();
		const cached = this.cache.get(token);
		if (cached !== undefined) return cached;
		const row = await this.db
			.select()
			.from(apiKeys)
			.where(eq(apiKeys.keyHash, await sha256Hex(token)))
			.get();
		const principal: Principal | null =
			row && row.revokedAt === null
				? { id: row.id, name: row.name, scopes: JSON.parse(row.scopes) as Scope[], datasets: row.datasets ? (JSON.parse(row.datasets) as string[]) : null }
				: null;
		if (this.cache.size >= KeyStore.MAX_CACHED) this.cache.clear();
		this.cache.set(token, principal);
		return principal;
	}

	/** Creates a key. The secret is returned here once and never again. */
	async create(input: { name: string; scopes: Scope[]; datasets: string[] | null }, now = Date.now()): Promise<{ key: string; info: KeyInfo }> {
		const id = `key_${randomToken(9)}`;
		const key = `hp_${randomToken(24)}`;
		await this.db.batch([
			this.db.insert(apiKeys).values({
				id,
				name: input.name,
				keyHash: await sha256Hex(key),
				scopes: JSON.stringify(input.scopes),
				datasets: input.datasets ? JSON.stringify(input.datasets) : null,
				createdAt: now,
			}),
			this.control.bumpStatement(),
		]);
		this.control.invalidate();
		return { key, info: { id, name: input.name, scopes: input.scopes, datasets: input.datasets, created_at: new Date(now).toISOString(), revoked_at: null } };
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
		return rows.map((r) => ({
			id: r.id,
			name: r.name,
			scopes: JSON.parse(r.scopes) as Scope[],
			datasets: r.datasets ? (JSON.parse(r.datasets) as string[]) : null,
			created_at: new Date(r.createdAt).toISOString(),
			revoked_at: r.revokedAt === null ? null : new Date(r.revokedAt).toISOString(),
		}));
	}
}
