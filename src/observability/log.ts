/**
 * Structured logs: one JSON object per line, which Workers Logs (wrangler.toml [observability])
 * indexes field by field. Every log line of the worker goes through here.
 */
type Fields = Record<string, unknown>;

function emit(level: "debug" | "info" | "warn" | "error", msg: string, fields?: Fields): void {
	const line = JSON.stringify({ level, msg, ...fields });
	if (level === "error") console.error(line);
	else if (level === "warn") console.warn(line);
	else console.log(line);
}

export const log = {
	debug: (msg: string, fields?: Fields) => emit("debug", msg, fields),
	info: (msg: string, fields?: Fields) => emit("info", msg, fields),
	warn: (msg: string, fields?: Fields) => emit("warn", msg, fields),
	error: (msg: string, fields?: Fields) => emit("error", msg, fields),
};

/** Logs a message once per isolate (per `key`): for failures that would otherwise repeat on every request. */
const logged = new Set<string>();
export function logOnce(key: string, level: "warn" | "error", msg: string, fields?: Fields): void {
	if (logged.has(key)) return;
	logged.add(key);
	log[level](msg, fields);
}
