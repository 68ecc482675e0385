/**
 * `npm run dev` on a port something already listens on (a dev server left running in another
 * terminal, the README's default 8787) stops at once, naming the port, and never talks to that
 * other server: it used to start wrangler anyway (which could not bind), take the other server's
 * /ping for its own worker, and seed it with its own admin key: a 401 about seeding, or a
 * "ready" pointing at a server that is not this one.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";

const repoRoot = path.join(import.meta.dirname, "..", "..");
let other: Server | undefined;
let dev: ChildProcess | undefined;
let persist = "";

afterEach(async () => {
	// The whole process group, even after npm exited: anything it left behind.
	if (dev?.pid) {
		try {
			process.kill(-dev.pid, "SIGKILL");
		} catch {}
	}
	await new Promise((r) => other?.close(r) ?? r(undefined));
	if (persist) rmSync(persist, { recursive: true, force: true });
});

it("stops with exit 1 naming the port when the port is taken, before any request to it", async () => {
	const requests: string[] = [];
	other = createServer((req, res) => {
		requests.push(`${req.method} ${req.url}`);
		res.writeHead(200, { "content-type": "application/json" }).end("{}");
	});
	await new Promise<void>((r) => other?.listen(0, "127.0.0.1", r));
	const port = (other.address() as AddressInfo).port;
	persist = mkdtempSync(path.join(tmpdir(), "hotpath-dev-port-"));
	let output = "";
	dev = spawn("npm", ["run", "dev", "--", "--port", String(port), "--persist-to", persist], {
		cwd: repoRoot,
		stdio: ["ignore", "pipe", "pipe"],
		detached: true,
	});
	dev.stdout?.on("data", (d: Buffer) => (output += d.toString()));
	dev.stderr?.on("data", (d: Buffer) => (output += d.toString()));
	const code = await new Promise<number | null>((resolve) => {
		const timer = setTimeout(() => resolve(null), 25_000);
		dev?.once("exit", (c) => {
			clearTimeout(timer);
			resolve(c);
		});
	});
	expect(code, output.slice(-2000)).toBe(1);
	expect(output).toContain(`port ${port}`);
	expect(output).toContain("in use");
	expect(requests).toEqual([]);
}, 40_000);
