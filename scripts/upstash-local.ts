// Upstash-compatible REST endpoint (POST /, /pipeline, /multi-exec, base64 encoding, bearer auth) in front of a real redis-server, for local dev and tests.

import { realpathSync } from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { Redis, type RedisOptions } from "ioredis";

export interface UpstashLocalOptions {
	redisUrl: string;
	token: string;
	/** Default 0: a free port picked by the OS. */
	port?: number;
	host?: string;
	/** Where connection state changes are reported; default console.error. */
	log?: (message: string) => void;
}

export interface UpstashLocal {
	url: string;
	port: number;
	close(): Promise<void>;
}

type Json = string | number | null | Json[];
type Outcome = { result: Json } | { error: string };

/** Upstash refuses requests over 10 MB ("ERR max request size exceeded", Free and Pay-as-you-go); so does this endpoint. */
export const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
const POOL_SIZE = 8;

// Commands that change connection state (and would leak into other requests on a shared
// connection) or block it; the worker never needs them.
const UNSUPPORTED = new Set([
	"SUBSCRIBE",
	"PSUBSCRIBE",
	"SSUBSCRIBE",
	"UNSUBSCRIBE",
	"PUNSUBSCRIBE",
	"SUNSUBSCRIBE",
	"MONITOR",
	"MULTI",
	"EXEC",
	"DISCARD",
	"WATCH",
	"UNWATCH",
	"SELECT",
	"QUIT",
	"RESET",
	"HELLO",
	"AUTH",
	"CLIENT",
	"BLPOP",
	"BRPOP",
	"BRPOPLPUSH",
	"BLMOVE",
	"BLMPOP",
	"BZPOPMIN",
	"BZPOPMAX",
	"BZMPOP",
	"WAIT",
	"WAITAOF",
]);

/** A request the client got wrong: answered with 400 and never reaches Redis. */
class BadRequest extends Error {}

// Fail fast while Redis is down instead of queueing, and never silently resend a command
// that may already have run (INCR twice) after a reconnect.
const redisOptions: RedisOptions = {
	protocol: 2, // RESP2 replies are what Upstash's JSON mirrors (flat ZRANGE WITHSCORES, Lua true -> 1)
	connectTimeout: 1000,
	commandTimeout: 5000,
	maxRetriesPerRequest: 1,
	enableOfflineQueue: false,
	autoResendUnfulfilledCommands: false,
	retryStrategy: (times) => Math.min(times * 100, 500),
};

function parseCommand(value: unknown): [string, ...string[]] {
	if (!Array.isArray(value) || value.length === 0) throw new BadRequest("ERR command must be a non-empty JSON array");
	const parts = value.map((part: unknown) => {
		if (typeof part === "string") return part;
		if (typeof part === "number" || typeof part === "boolean") return String(part);
		throw new BadRequest(`ERR invalid argument ${JSON.stringify(part)}: only strings, numbers and booleans`);
	});
	// Upper case also keeps ioredis' lower-case-keyed reply transformers (hgetall -> object) out of the way.
	const name = parts[0]!.toUpperCase();
	if (UNSUPPORTED.has(name)) throw new BadRequest(`ERR upstash-local does not support ${name}`);
	return [name, ...parts.slice(1)];
}

function parseCommands(value: unknown): [string, ...string[]][] {
	if (!Array.isArray(value) || value.length === 0) throw new BadRequest("ERR body must be a non-empty array of commands");
	return value.map(parseCommand);
}

/** Redis reply -> JSON; with base64, every string at any depth is encoded except a top-level "OK", as Upstash does. */
function toJson(reply: unknown, base64: boolean, topLevel = true): Json {
	if (reply === null || reply === undefined) return null;
	if (typeof reply === "number") return reply;
	if (Array.isArray(reply)) return reply.map((item) => toJson(item, base64, false));
	if (reply instanceof Error) return toJson(reply.message, base64, false);
	const bytes = Buffer.isBuffer(reply) ? reply : Buffer.from(String(reply));
	if (!base64) return bytes.toString("utf8");
	if (topLevel && bytes.length === 2 && bytes.toString("latin1") === "OK") return "OK";
	return bytes.toString("base64");
}

function isReplyError(err: unknown): err is Error {
	return err instanceof Error && err.name === "ReplyError";
}

function errorMessage(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

/** Pool of dedicated connections for MULTI/EXEC, so a transaction never shares a socket with other requests. */
class ConnectionPool {
	private idle: Redis[] = [];
	private total = 0;
	private waiters: ((conn: Redis) => void)[] = [];
	private closed = false;
	private readonly create: () => Redis;
	constructor(create: () => Redis) {
		this.create = create;
	}

	async acquire(): Promise<Redis> {
		const conn = this.idle.pop();
		if (conn) return conn;
		if (this.total >= POOL_SIZE) return new Promise((resolve) => this.waiters.push(resolve));
		this.total++;
		const fresh = this.create();
		try {
			await waitReady(fresh, redisOptions.connectTimeout ?? 1000);
			return fresh;
		} catch (err) {
			this.total--;
			fresh.disconnect();
			throw err;
		}
	}

	release(conn: Redis): void {
		if (this.closed) return void conn.disconnect();
		const waiter = this.waiters.shift();
		if (waiter) waiter(conn);
		else this.idle.push(conn);
	}

	close(): void {
		this.closed = true;
		for (const conn of this.idle) conn.disconnect();
		this.idle = [];
	}
}

function waitReady(conn: Redis, timeoutMs: number): Promise<void> {
	if (conn.status === "ready") return Promise.resolve();
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => finish(new Error(`Redis not reachable within ${timeoutMs} ms`)), timeoutMs);
		const onReady = (): void => finish();
		const onError = (err: Error): void => finish(err);
		const finish = (err?: Error): void => {
			clearTimeout(timer);
			conn.off("ready", onReady);
			conn.off("error", onError);
			if (err) reject(err);
			else resolve();
		};
		conn.on("ready", onReady);
		conn.on("error", onError);
	});
}

function settle(results: [Error | null, unknown][] | null, base64: boolean): Outcome[] {
	return (results ?? []).map(([err, reply]) => {
		if (!err) return { result: toJson(reply, base64) };
		if (isReplyError(err)) return { error: err.message };
		throw err; // connection trouble: the whole request fails with 503
	});
}

export async function startUpstashLocal(options: UpstashLocalOptions): Promise<UpstashLocal> {
	const { redisUrl, token, host = "127.0.0.1", log = (message: string) => console.error(message) } = options;
	const shared = new Redis(redisUrl, redisOptions);
	// Without 'error' listeners ioredis would print every failed reconnect; report only up/down transitions.
	let up: boolean | undefined;
	let closing = false;
	const report = (message: string): void => {
		if (!closing) log(`[upstash-local] redis ${redisUrl}: ${message}`);
	};
	shared.on("ready", () => {
		if (up !== true) report("ready");
		up = true;
	});
	shared.on("close", () => {
		if (up === true) report("connection lost, reconnecting (requests get 503 meanwhile)");
		up = false;
	});
	shared.on("error", (err: Error) => {
		if (up === undefined) report(`unreachable (${err.message}), retrying (requests get 503 meanwhile)`);
		up = false;
	});
	const pool = new ConnectionPool(() => new Redis(redisUrl, redisOptions).on("error", () => undefined));
	// Start even when Redis is not up yet: requests get 503 until it is.
	await waitReady(shared, 2000).catch(() => undefined);

	const runOne = async (command: [string, ...string[]], base64: boolean): Promise<Json> => {
		const [name, ...args] = command;
		return toJson(await shared.callBuffer(name, args), base64);
	};

	const runPipeline = async (commands: [string, ...string[]][], base64: boolean): Promise<Outcome[]> => {
		// One ioredis pipeline: written in one go, in order, on the shared connection.
		const pipeline = shared.pipeline();
		for (const [name, ...args] of commands) pipeline.callBuffer(name, args);
		return settle(await pipeline.exec(), base64);
	};

	const runMultiExec = async (commands: [string, ...string[]][], base64: boolean): Promise<Outcome[]> => {
		const conn = await pool.acquire();
		try {
			// MULTI/EXEC sent as plain commands so EXEC's reply comes back raw (Buffers, per-command errors inline).
			const pipeline = conn.pipeline();
			pipeline.callBuffer("MULTI");
			for (const [name, ...args] of commands) pipeline.callBuffer(name, args);
			pipeline.callBuffer("EXEC");
			const results = (await pipeline.exec()) ?? [];
			for (const [err] of results) if (err && !isReplyError(err)) throw err;
			const [execErr, execReply] = results[results.length - 1] ?? [new Error("no EXEC reply"), null];
			if (execErr) {
				// Discarded as a whole (EXECABORT): report the first queueing error, which says what was wrong.
				const queueErr = results.slice(1, -1).find(([err]) => err)?.[0];
				throw new BadRequest(queueErr ? `${execErr.message} ${queueErr.message}` : execErr.message);
			}
			if (!Array.isArray(execReply)) throw new BadRequest("ERR transaction aborted");
			return execReply.map((reply: unknown) => (reply instanceof Error ? { error: reply.message } : { result: toJson(reply, base64) }));
		} finally {
			pool.release(conn);
		}
	};

	const handle = async (req: http.IncomingMessage, body: Buffer): Promise<[number, unknown]> => {
		const url = new URL(req.url ?? "/", "http://localhost");
		const auth = req.headers.authorization ?? "";
		const given = auth.startsWith("Bearer ") ? auth.slice(7) : url.searchParams.get("_token");
		if (given !== token) return [401, { error: "Unauthorized" }];
		if (!["GET", "POST", "PUT"].includes(req.method ?? "")) return [405, { error: "Method Not Allowed" }];
		const format = req.headers["upstash-response-format"];
		if (format !== undefined && format !== "json") return [400, { error: "ERR upstash-local only supports Upstash-Response-Format: json" }];
		const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
		const route = url.pathname.replace(/\/+$/, "") || "/";

		const json = (): unknown => {
			try {
				return JSON.parse(body.toString("utf8"));
			} catch {
				throw new BadRequest("ERR malformed JSON body");
			}
		};
		try {
			if (route === "/pipeline" || route === "/multi-exec") {
				if (req.method === "GET") return [405, { error: "Method Not Allowed" }];
				const commands = parseCommands(json());
				return [200, route === "/pipeline" ? await runPipeline(commands, base64) : await runMultiExec(commands, base64)];
			}
			let command: unknown;
			if (route === "/") {
				command = json();
			} else {
				// Path style, as in the Upstash docs: /set/foo/bar?EX=100, a POST body is appended as the value.
				const parts: string[] = route.slice(1).split("/").map(decodeURIComponent);
				if (req.method !== "GET" && body.length > 0) parts.push(body.toString("utf8"));
				for (const [key, value] of url.searchParams) if (key !== "_token") parts.push(key, ...(value === "" ? [] : [value]));
				command = parts;
			}
			return [200, { result: await runOne(parseCommand(command), base64) }];
		} catch (err) {
			if (err instanceof BadRequest || isReplyError(err)) return [400, { error: errorMessage(err) }];
			return [503, { error: `Redis unavailable: ${errorMessage(err)}` }];
		}
	};

	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		let size = 0;
		const reply = (status: number, payload: unknown): void => {
			if (res.headersSent) return;
			res.writeHead(status, { "content-type": "application/json" });
			res.end(JSON.stringify(payload));
		};
		req.on("data", (chunk: Buffer) => {
			size += chunk.length;
			if (size > MAX_REQUEST_BYTES) {
				reply(400, { error: "ERR max request size exceeded" });
				req.destroy();
			} else chunks.push(chunk);
		});
		req.on("end", () => {
			handle(req, Buffer.concat(chunks)).then(
				([status, payload]) => reply(status, payload),
				(err: unknown) => reply(500, { error: errorMessage(err) }),
			);
		});
		req.on("error", () => res.destroy());
	});

	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(options.port ?? 0, host, () => resolve());
	});
	const address = server.address();
	const port = typeof address === "object" && address ? address.port : 0;
	return {
		url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
		port,
		async close() {
			closing = true;
			const closed = new Promise<void>((resolve) => server.close(() => resolve()));
			server.closeAllConnections(); // keep-alive fetch connections would hold close() open
			await closed;
			pool.close();
			shared.disconnect();
		},
	};
}

async function main(): Promise<void> {
	const { values } = parseArgs({
		options: {
			redis: { type: "string", default: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
			port: { type: "string", default: process.env.UPSTASH_LOCAL_PORT ?? "8079" },
			host: { type: "string", default: "127.0.0.1" },
			token: { type: "string", default: process.env.UPSTASH_REDIS_REST_TOKEN ?? "local-dev-token" },
			help: { type: "boolean", short: "h", default: false },
		},
	});
	if (values.help) {
		console.log(`Usage: node scripts/upstash-local.ts [--redis URL] [--port N] [--host H] [--token T]
Serves the Upstash REST protocol (POST /, /pipeline, /multi-exec) in front of a real Redis.
Defaults: --redis $REDIS_URL or redis://127.0.0.1:6379, --port 8079, --host 127.0.0.1,
          --token $UPSTASH_REDIS_REST_TOKEN or local-dev-token`);
		return;
	}
	const port = Number(values.port);
	if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`);
	const local = await startUpstashLocal({ redisUrl: values.redis, token: values.token, port, host: values.host });
	console.log(`upstash-local listening on ${local.url} -> ${values.redis}`);
	console.log(`UPSTASH_REDIS_REST_URL=${local.url} UPSTASH_REDIS_REST_TOKEN=${values.token}`);
	const shutdown = (): void => {
		void local.close().then(() => process.exit(0));
	};
	process.once("SIGINT", shutdown);
	process.once("SIGTERM", shutdown);
}

if (process.argv[1] && realpathSync(process.argv[1]) === import.meta.filename) {
	main().catch((err: unknown) => {
		console.error(err instanceof Error ? err.message : err);
		process.exit(1);
	});
}
