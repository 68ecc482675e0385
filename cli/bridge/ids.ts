/** Event ids from source positions: stable on redelivery, within Hotpath's 128 characters, and sorting in source order. */
import { createHash } from "node:crypto";

/** Hotpath's limit on an event id. */
export const MAX_ID_LENGTH = 128;

/**
 * A sequence number zero-padded to 20 digits (any uint64). Hotpath breaks a tie on event_time by
 * comparing ids as strings, so two messages for one key in the same millisecond must sort in
 * stream order: "…:00000000000000000010" after "…:00000000000000000009", which "10" and "9" do not.
 */
export const seq20 = (n: number | bigint | string): string => String(n).padStart(20, "0");

/** The first 128 bits of SHA-256, in hex: ids for messages that carry no position of their own. */
export const contentHash = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex").slice(0, 32);

/** `id` itself when it fits Hotpath's limit; otherwise `prefix` and a hash of it (stable, but no longer in source order). */
export function boundedId(prefix: string, id: string): string {
	return id.length <= MAX_ID_LENGTH ? id : `${prefix}:~${contentHash(id)}`;
}
