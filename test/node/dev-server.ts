/**
 * One real `npm run dev` for the Node tests that need a running Hotpath (the SDK's and the CLI's).
 *
 * Registered as a vitest globalSetup, this module starts nothing by itself: it serves a tiny
 * loopback endpoint, and the first test file that asks (`useDevServer()`) makes it start the dev
 * server, which every later file then shares; it is stopped when the run ends. Without that
 * registration each test file that calls `useDevServer()` starts and stops its own.
 * `HOTPATH_TEST_URL` (with `HOTPATH_TEST_KEY`, the admin key) points the tests at a server that
 * is already running instead.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, inject } from "vitest";
import type { TestProject } from "vitest/node";
import { adminKeyOf } from "../../scripts/lib/dev-vars.ts";
import { freePort } from "../../scripts/lib/redis-server.ts";

declare module "vitest" {
	export interface ProvidedContext {
		/** URL of the globalSetup's endpoint that hands out the shared dev server. */
		hotpathDevServer?: string;
	}
}

export const repoRoot = path.join(import.meta.dirname, "..", "..");

export interface DevServer {
	url: string;
	adminKey: string;
}

interface RunningServer extends DevServer {
	stop(): Promise<void>;
}

/** Polls until `fn` gives a value (not undefined), or throws after `ms`. */
export async function eventually<T>(fn: () => Promise<T | undefined>, ms = 15_000, everyMs = 150): Promise<T> {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v !== undefined) return v;
		if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
		await new Promise((r) => setTimeout(r, everyMs));
	}
}

/** A dataset name no other test or run uses: `prefix_<time><random>`, a valid lowercase identifier. */
export function uniqueName(prefix: string): string {
	return `${prefix}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`.toLowerCase();
}

/** Starts `npm run dev` on a free port with its own persistence directory, and waits until it is ready. */
export async function startDevServer(): Promise<RunningServer> {
	const port = await freePort();
	const url = `http://127.0.0.1:${port}`;
	const persist = mkdtempSync(path.join(tmpdir(), "hotpath-dev-"));
	let output = "";
	const dev: ChildProcess = spawn("npm", ["run", "dev", "--", "--port", String(port), "--persist-to", persist], {
		cwd: repoRoot,
		stdio: ["ignore", "pipe", "pipe"],
		detached: true,
	});
	dev.stdout?.on("data", (d: Buffer) => (output += d.toString()));
	dev.stderr?.on("data", (d: Buffer) => (output += d.toString()));
	const stop = async () => {
		if (dev.pid && dev.exitCode === null) {
			// The whole process group: npm, node scripts/dev.ts, wrangler, workerd, redis-server.
			try {
				process.kill(-dev.pid, "SIGTERM");
			} catch {}
			await new Promise((r) => setTimeout(r, 1500));
			try {
				process.kill(-dev.pid, "SIGKILL");
			} catch {}
		}
		rmSync(persist, { recursive: true, force: true });
	};
	try {
		await eventually(async () => {
			if (dev.exitCode !== null) throw new Error(`npm run dev exited with code ${dev.exitCode}`);
			return output.includes("[hotpath] ready at") ? true : undefined;
		}, 120_000);
	} catch (e) {
		await stop();
		throw new Error(`npm run dev did not become ready: ${e}\n${output.slice(-3000)}`);
	}
	const adminKey = adminKeyOf(readFileSync(path.join(repoRoot, ".dev.vars"), "utf8")) ?? "";
	if (!adminKey) throw new Error("no HOTPATH_ADMIN_KEY in .dev.vars");
	return { url, adminKey, stop };
}

/** vitest globalSetup: serves GET /acquire, which starts the shared dev server on first use. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	let running: Promise<RunningServer> | undefined;
	const endpoint = createServer((req, res) => {
		if (req.url !== "/acquire") {
			res.writeHead(404).end();
			return;
		}
		running ??= startDevServer();
		running.then(
			(s) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ url: s.url, adminKey: s.adminKey })),
			(e: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(String(e)),
		);
	});
	await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
	const address = endpoint.address();
	project.provide("hotpathDevServer", `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`);
	return async () => {
		endpoint.close();
		if (running) await (await running.catch(() => undefined))?.stop();
	};
}

/**
 * Gives the test file a running dev server: the shared one when the globalSetup above is
 * registered, else one of its own for this file. Call at the top of a test file.
 *
 * @example
 * const server = useDevServer();
 * it("reads", async () => { const { url, adminKey } = server(); ... });
 */
export function useDevServer(): () => DevServer {
	let server: DevServer | undefined;
	let own: RunningServer | undefined;
	beforeAll(async () => {
		const shared = inject("hotpathDevServer");
		if (process.env.HOTPATH_TEST_URL) {
			server = { url: process.env.HOTPATH_TEST_URL, adminKey: process.env.HOTPATH_TEST_KEY ?? "" };
		} else if (shared) {
			const res = await fetch(`${shared}/acquire`, { signal: AbortSignal.timeout(180_000) });
			if (!res.ok) throw new Error(`the shared dev server did not start: ${await res.text()}`);
			server = (await res.json()) as DevServer;
		} else {
			own = await startDevServer();
			server = own;
		}
	}, 180_000);
	afterAll(async () => {
		await own?.stop();
	});
	return () => {
		if (!server) throw new Error("the dev server is not running (useDevServer's beforeAll failed)");
		return server;
	};
}
