// Starts a private, throwaway redis-server on a free port for tests and local tools (never the shared one on 6379).
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export interface StartRedisServerOptions {
	/** Fixed port; default is a free one picked by the OS. */
	port?: number;
	/** redis-server binary; default $REDIS_SERVER_BIN, else found on PATH. */
	bin?: string;
	/** How long to wait for the server to answer PING. */
	startTimeoutMs?: number;
}

export interface RedisServerHandle {
	url: string;
	port: number;
	/** Graceful shutdown (SIGTERM), resolves once the process has exited. */
	stop(): Promise<void>;
	/** Crash it (SIGKILL), resolves once the process has exited. */
	kill(): Promise<void>;
	/** Start it again on the same port (stopping it first if still running); data is gone. */
	restart(): Promise<void>;
}

export function findRedisServer(): string | undefined {
	const candidates = process.env.REDIS_SERVER_BIN
		? [process.env.REDIS_SERVER_BIN]
		: (process.env.PATH ?? "")
				.split(path.delimiter)
				.filter(Boolean)
				.map((dir) => path.join(dir, "redis-server"));
	for (const candidate of candidates) {
		try {
			accessSync(candidate, constants.X_OK);
			return candidate;
		} catch {
			// not here, keep looking
		}
	}
	return undefined;
}

export function redisServerAvailable(): boolean {
	return findRedisServer() !== undefined;
}

export function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = net.createServer();
		server.unref();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const address = server.address();
			const port = typeof address === "object" && address ? address.port : 0;
			server.close(() => (port ? resolve(port) : reject(new Error("could not read a free port"))));
		});
	});
}

/** One PING over a raw socket: avoids depending on a Redis client and its reconnect logic here. */
function ping(port: number, timeoutMs: number): Promise<boolean> {
	return new Promise((resolve) => {
		const socket = net.connect({ port, host: "127.0.0.1" });
		let reply = "";
		const done = (ok: boolean): void => {
			socket.destroy();
			resolve(ok);
		};
		socket.setTimeout(timeoutMs, () => done(false));
		socket.once("error", () => done(false));
		socket.once("connect", () => socket.write("PING\r\n"));
		socket.on("data", (chunk) => {
			reply += chunk.toString("latin1");
			// -LOADING and friends mean "not yet"
			if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
		});
	});
}

function waitForExit(child: ChildProcess): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
	return new Promise((resolve) => child.once("exit", () => resolve()));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function startRedisServer(options: StartRedisServerOptions = {}): Promise<RedisServerHandle> {
	const bin = options.bin ?? findRedisServer();
	if (!bin) {
		throw new Error("redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER_BIN");
	}
	const startTimeoutMs = options.startTimeoutMs ?? 5000;
	let port = options.port ?? (await freePort());
	let child: ChildProcess | undefined;
	// A crashed test run must not leave orphaned redis-servers behind.
	const killOnExit = (): void => {
		child?.kill("SIGKILL");
	};
	process.once("exit", killOnExit);

	const spawnAndWait = async (): Promise<void> => {
		const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", tmpdir()];
		const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
		child = proc;
		let output = "";
		const collect = (chunk: Buffer): void => {
			output = (output + chunk.toString()).slice(-4000);
		};
		proc.stdout?.on("data", collect);
		proc.stderr?.on("data", collect);
		let spawnError: Error | undefined;
		proc.once("error", (err) => {
			spawnError = err;
		});
		const deadline = Date.now() + startTimeoutMs;
		while (Date.now() < deadline) {
			if (spawnError) throw new Error(`cannot run ${bin}: ${spawnError.message}`);
			if (proc.exitCode !== null || proc.signalCode !== null) {
				throw new Error(`redis-server on port ${port} exited during startup (code ${proc.exitCode}):\n${output}`);
			}
			if (await ping(port, 250)) return;
			await sleep(25);
		}
		proc.kill("SIGKILL");
		await waitForExit(proc);
		throw new Error(`redis-server on port ${port} did not answer PING within ${startTimeoutMs} ms:\n${output}`);
	};

	const terminate = async (signal: NodeJS.Signals): Promise<void> => {
		const proc = child;
		if (!proc) return;
		child = undefined;
		if (proc.exitCode !== null || proc.signalCode !== null) return;
		const exited = waitForExit(proc);
		proc.kill(signal);
		const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
		await exited;
		clearTimeout(timer);
	};

	/**
	 * Starts redis, retrying up to `attempts` times while its port is in use; `beforeRetry` says
	 * whether to retry (and may move to another port).
	 */
	const spawnRetryingPort = async (attempts: number, beforeRetry: () => Promise<boolean>): Promise<void> => {
		for (let attempt = 1; ; attempt++) {
			try {
				return await spawnAndWait();
			} catch (err) {
				await terminate("SIGKILL");
				if (attempt >= attempts || !/Address already in use/i.test(String(err)) || !(await beforeRetry())) throw err;
			}
		}
	};

	// A port picked by freePort() can be taken by someone else before redis binds it; pick another.
	try {
		await spawnRetryingPort(3, async () => {
			if (options.port !== undefined) return false;
			port = await freePort();
			return true;
		});
	} catch (err) {
		process.removeListener("exit", killOnExit);
		throw err;
	}

	return {
		url: `redis://127.0.0.1:${port}`,
		port,
		async stop() {
			await terminate("SIGTERM");
			process.removeListener("exit", killOnExit);
		},
		async kill() {
			await terminate("SIGKILL");
		},
		async restart() {
			await terminate("SIGTERM");
			process.removeListener("exit", killOnExit);
			process.once("exit", killOnExit);
			// The port must stay the same, and for a moment it can still be held: a client reconnecting
			// to it can even connect to itself. Wait for it rather than give up.
			await spawnRetryingPort(10, async () => {
				await sleep(200);
				return true;
			});
		},
	};
}
