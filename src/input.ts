/**
 * Keys, event ids and event times as Hotpath accepts them, wherever they arrive: events, imports,
 * reads, lookups, as_of. One definition, below every feature that checks them.
 */

/** KV keys are at most 512 bytes; the dataset prefix takes the rest. */
export const MAX_KEY_BYTES = 400;
export const MAX_ID_LENGTH = 128;

/**
 * How far ahead of the receiving clock an event_time may be, by default (MAX_FUTURE_SKEW_SECONDS).
 * A future time freezes the record against every later event until then, so one skewed producer
 * is refused rather than stored.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 300_000;

/** The largest epoch ms a Date holds (+275760-09-13): past it a time has no RFC 3339 form, and rendering one throws. */
export const MAX_TIME_MS = 8_640_000_000_000_000;

/** Numbers that read as a plausible time in epoch seconds (1973 to 5138): only said of in errors, never taken as such. */
const EPOCH_SECONDS_FROM = 1e8;
const EPOCH_SECONDS_TO = 1e11;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses `event_time`: RFC 3339 text or epoch milliseconds, no later than `now` plus the allowed skew. */
export function parseEventTime(v: unknown, now = Date.now(), maxFutureMs = DEFAULT_MAX_FUTURE_SKEW_MS): number | string {
	let t: number;
	if (typeof v === "number") {
		// A whole number past 2^53 is past MAX_TIME_MS too: refused below as too late, not as not whole.
		if (!Number.isInteger(v)) {
			// Fractional epoch seconds (Fluent Bit's default `date`, Python's time.time()): say so, and what to send.
			if (v > EPOCH_SECONDS_FROM && v < EPOCH_SECONDS_TO)
				return `event_time ${v} is not whole milliseconds: it looks like epoch seconds; send epoch milliseconds or RFC 3339`;
			return "event_time as a number must be whole epoch milliseconds";
		}
		if (v < 0) return `event_time ${v} is before 1970-01-01T00:00:00Z (epoch 0), the earliest time accepted`;
		t = v;
	} else if (typeof v === "string") {
		const m = RFC3339.exec(v);
		t = m ? Date.parse(v) : Number.NaN;
		// Date.parse rolls impossible dates over (Feb 30 -> Mar 2); the calendar fields must survive the round trip.
		if (m && Number.isFinite(t)) {
			const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
			const check = new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s));
			if (check.getUTCMonth() !== (mo as number) - 1 || check.getUTCDate() !== d || (h as number) > 23 || (mi as number) > 59 || (s as number) > 59)
				t = Number.NaN;
		}
		if (!Number.isFinite(t)) {
			// Two well-formed inputs the generic answer would call malformed: say what to send instead.
			if (/^\d+$/.test(v)) return `event_time "${v}" is a string: send epoch milliseconds as a JSON number (${v}), or RFC 3339 text`;
			if (m?.[6] === "60")
				return `event_time "${v}" is a leap second, which epoch milliseconds cannot hold: send ${v.slice(0, 17)}59.999${m[8]} or the next second`;
			return `event_time "${v}" is not a valid RFC 3339 time (e.g. 2026-01-02T03:04:05Z) or epoch milliseconds`;
		}
		// A well-formed time before the epoch is not malformed: say what is wrong with it.
		if (t < 0) return `event_time "${v}" is before 1970-01-01T00:00:00Z (epoch 0), the earliest time accepted`;
	} else {
		return "event_time must be an RFC 3339 string or epoch milliseconds";
	}
	// Callers that allow any future (expires_at, as_of) would store or render a time no Date can hold.
	if (t > MAX_TIME_MS) return `event_time ${v} is past the latest time there is (${new Date(MAX_TIME_MS).toISOString()})`;
	if (t > now + maxFutureMs) return `event_time ${v} is more than ${describeSkew(maxFutureMs)} ahead of the server's clock (${new Date(now).toISOString()})`;
	return t;
}

const describeSkew = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);

/** Whether a key is well-formed Unicode: a lone surrogate cannot be stored or used as a KV key. */
export const isWellFormedKey = (key: string): boolean => !/\p{Cs}/u.test(key);
