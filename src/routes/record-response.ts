/** The headers of a single-record answer: the one place they are made, for the records route and the L0 fast lane. */
import { type RecordView, reusableSeconds } from "../serving/freshness";
import type { ServedCopy } from "../serving/lookup";
import { CORS_HEADERS } from "./cors";

/**
 * The ETag of a record response: the revision, the value's event time and status, and a suffix for
 * the options that change the body (projection, if_stale=omit).
 */
export function recordEtag(copy: ServedCopy, status: RecordView["status"], optionsSuffix = ""): string {
	return `W/"${copy.rev}-${copy.eventTimeMs}-${status}${optionsSuffix}"`;
}

/**
 * Whether an If-None-Match header names `etag`: "*", or a list of tags compared weakly (RFC 9110
 * 13.1.2), so a tag sent back without its W/ prefix matches too.
 */
export function noneMatch(header: string, etag: string): boolean {
	const opaque = (tag: string) => (tag.startsWith("W/") ? tag.slice(2) : tag);
	const ours = opaque(etag);
	return header.trim() === "*" || header.split(",").some((t) => opaque(t.trim()) === ours);
}

export interface RecordHeaderInput {
	view: RecordView;
	copy: ServedCopy;
	/** The read's freshness limit (ms). */
	limitMs: number;
	l0TtlSeconds: number;
	/** Tiers that answered, as X-Hotpath-Tier lists them. */
	tiers: string;
	serverTiming: string;
	etag: string;
}

/** X-Hotpath-Tier, Server-Timing, ETag, Cache-Control (how long the value may be reused) and Content-Type. */
export function recordHeaders(h: RecordHeaderInput): Record<string, string> & { etag: string } {
	const maxAge = reusableSeconds(h.view, h.copy.lagMs, h.limitMs, h.l0TtlSeconds);
	return {
		"x-hotpath-tier": h.tiers,
		"server-timing": h.serverTiming,
		etag: h.etag,
		"cache-control": h.view.status === "present" ? `private, max-age=${maxAge}` : "no-cache",
		// The answer depends on the key that asked (a key limited to other datasets, revoked or expired
		// gets a 401/403): a browser's cache must not hand it to a request made with another key.
		vary: "Authorization",
		"content-type": "application/json",
		// The fast lane answers without the app, which adds these to every other answer.
		...CORS_HEADERS,
	};
}
