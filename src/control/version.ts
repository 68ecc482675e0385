/**
 * Isolate caches of control-plane data (the registry and the API keys) stay correct through one
 * D1 row, `control_version`, that every registry or key change bumps. An isolate asks for it at
 * most once per `CONTROL_CHECK_MS` (one query shared by concurrent requests), so a change made in
 * this isolate shows on the next request, and one made elsewhere within that interval, without
 * putting a D1 round trip on every read.
 *
 * Caches fill only from loads that no change overtook: a loader notes `epoch` before it reads
 * D1 and caches its result only if `epoch` is unchanged afterwards. Otherwise a load that read a
 * key before its revocation could land in the cache after the revocation cleared it, and undo it.
 *
 * No request ever awaits a promise another request started: workerd may resume the waiter in the
 * other request's I/O context, where touching its own request body fails. A request that finds a
 * check in flight goes on with the caches as they are, or, when there are none to go on with, waits
 * for that check on a timer.
 */
import { eq, sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { log } from "../observability/log";
import { controlVersion } from "../storage/schema";
import { waitWhile } from "./wait";

type Listener = () => void;

/** How long a request waits for a check another request has in flight. */
const CHECK_WAIT_MS = 2000;

export class ControlVersion {
	private version = -1;
	private checkedAt = Number.NEGATIVE_INFINITY;
	private checking = false;
	private checkStartedAt = Number.NEGATIVE_INFINITY;
	private changes = 0;
	private readonly listeners: Listener[] = [];

	constructor(
		private readonly db: DrizzleD1Database,
		private readonly checkEveryMs: number,
		private readonly now: () => number = Date.now,
	) {}

	/** Grows whenever this isolate learns of a change: a cache may keep a load only if it did not move meanwhile. */
	get epoch(): number {
		return this.changes;
	}

	/** Registers a cache to drop when the version changes. */
	onChange(listener: Listener): void {
		this.listeners.push(listener);
	}

	/**
	 * Whether the caches reflect D1's version as of less than an interval ago, so ensureCurrent would
	 * return at once. Lets the hottest reads use the caches without an await.
	 */
	isCurrent(): boolean {
		return this.now() - this.checkedAt < this.checkEveryMs;
	}

	/** Makes sure caches reflect D1's version, asking D1 only when the last check is older than the interval. */
	async ensureCurrent(): Promise<void> {
		const now = this.now();
		if (now - this.checkedAt < this.checkEveryMs) return;
		// A check in flight for longer than an interval is taken as lost (its D1 call hangs, or its request
		// went away with it), so it cannot keep every later request from checking.
		if (this.checking && now - this.checkStartedAt < this.checkEveryMs) {
			// Someone else is checking and the caches were current one interval ago: good enough.
			if (this.version !== -1) return;
			// Nothing is known yet (a cold isolate, or just after a change made here): wait for that check
			// on a timer (never on its promise), rather than each request arriving together asking D1.
			await waitWhile(() => this.checking, CHECK_WAIT_MS);
			if (this.version !== -1) return;
			// It failed, or a change made here meanwhile asks for a new one: check here.
		}
		this.checking = true;
		this.checkStartedAt = now;
		try {
			await this.check(now);
		} catch (e) {
			// D1 did not answer. Caches loaded at the last known version keep serving, so reads of what
			// they and the tiers hold go on through a D1 outage (a change written meanwhile is seen at
			// the first check that answers); the check is tried again after the interval. With
			// nothing loaded yet there is nothing to serve from.
			if (this.version === -1) throw e;
			log.warn("control version check failed; serving the last known registry and keys", { error: String(e) });
			this.checkedAt = now;
		} finally {
			this.checking = false;
		}
	}

	/** The statement that bumps the version, for callers that batch it with their own write. */
	bumpStatement() {
		return this.db
			.insert(controlVersion)
			.values({ id: 1, version: 1 })
			.onConflictDoUpdate({ target: controlVersion.id, set: { version: sql`${controlVersion.version} + 1` } });
	}

	/** Drops this isolate's caches at once, after a change it made itself. */
	invalidate(): void {
		this.checkedAt = Number.NEGATIVE_INFINITY;
		this.version = -1;
		this.changed();
	}

	private changed(): void {
		this.changes++;
		for (const l of this.listeners) l();
	}

	private async check(now: number): Promise<void> {
		const row = await this.db.select({ v: controlVersion.version }).from(controlVersion).where(eq(controlVersion.id, 1)).get();
		const v = row?.v ?? 0;
		if (v !== this.version) {
			this.changed();
			this.version = v;
		}
		this.checkedAt = now;
	}
}
