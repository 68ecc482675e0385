/** Runs `cli/bridge/main.ts` as a child process (so it can be killed with SIGKILL) and reads its /metrics. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../../../scripts/lib/redis-server.ts";

export const repoRoot = path.join(import.meta.dirname, "..", "..", "..");
const MAIN = path.join(repoRoot, "cli", "bridge", "main.ts");

export interface SourceMetrics {
	type: string;
	received: number;
	sent: number;
	acked: number;
	rejected: number;
	pending: number;
	lag: number | null;
}

export interface Metrics {
	uptime_s: number;
	target: { url: string; failing: boolean; retries: number };
	sources: Record<string, SourceMetrics>;
}

export interface BridgeProcess {
	proc: ChildProcess;
	port: number;
	output(): string;
	metrics(): Promise<Metrics>;
	/** SIGTERM (or another signal) and the exit code. */
	stop(signal?: NodeJS.Signals): Promise<number | null>;
	/** SIGKILL: no drain, no acks. */
	kill9(): Promise<void>;
	exited: Promise<number | null>;
}

/** Polls until `fn` gives a value (not undefined), or throws after `ms`. */
export async function eventually<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 20_000, what = "condition"): Promise<T> {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v !== undefined) return v;
		if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 100));
	}
}

/** A scratch directory for a test's config, reject logs and state files. */
export function scratchDir(): { dir: string; remove: () => void } {
	const dir = mkdtempSync(path.join(tmpdir(), "hotpath-bridge-test-"));
	return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Reads an NDJSON file (the reject log); [] when it does not exist. */
export function readNdjson(file: string): Record<string, unknown>[] {
	let text = "";
	try {
		text = readFileSync(file, "utf8");
	} catch {
		return [];
	}
	return text
		.split("\n")
		.filter(Boolean)
		.map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Starts the bridge with this config and waits until every source has started. */
export async function spawnBridge(config: object, dir: string, sourceNames: string[], args: string[] = []): Promise<BridgeProcess> {
	const file = path.join(dir, `bridge-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.json`);
	writeFileSync(file, JSON.stringify(config));
	const port = await freePort();
	const proc = spawn(process.execPath, [MAIN, "--config", file, "--status-port", String(port), "--status-interval", "1", ...args], {
		cwd: dir,
		stdio: ["ignore", "pipe", "pipe"],
	});
	let out = "";
	proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
	proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
	const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
	const metrics = async () => {
		const res = await fetch(`http://127.0.0.1:${port}/metrics`);
		return (await res.json()) as Metrics;
	};
	const bridge: BridgeProcess = {
		proc,
		port,
		output: () => out,
		metrics,
		exited,
		stop: async (signal = "SIGTERM") => {
			if (proc.exitCode === null) proc.kill(signal);
			return exited;
		},
		kill9: async () => {
			if (proc.exitCode === null) proc.kill("SIGKILL");
			await exited;
		},
	};
	try {
		await eventually(
			() => {
				if (proc.exitCode !== null) throw new Error(`the bridge exited with ${proc.exitCode}`);
				return sourceNames.every((n) => out.includes(`${n}: started`)) ? true : undefined;
			},
			30_000,
			"the bridge to start",
		);
	} catch (e) {
		await bridge.kill9();
		throw new Error(`${(e as Error).message}\n${out}`);
	}
	return bridge;
}

/** The config's `target` and fast retries for tests. */
export const testTarget = (url: string, key: string) => ({
	target: { url, key, timeout_ms: 5000 },
	retry: { initial_ms: 100, max_ms: 1000 },
});

/** Runs the bridge with this config (extra arguments appended) until it exits by itself; `via: "cli"` runs it as `hotpath bridge`. */
export async function runToExit(
	config: object | string,
	dir: string,
	args: string[] = [],
	{ timeoutMs = 30_000, via = "main" }: { timeoutMs?: number; via?: "main" | "cli" } = {},
): Promise<{ code: number | null; output: string }> {
	const file = path.join(dir, `bridge-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.json`);
	writeFileSync(file, typeof config === "string" ? config : JSON.stringify(config));
	const entry = via === "cli" ? [path.join(repoRoot, "cli", "hotpath.ts"), "bridge"] : [MAIN];
	const proc = spawn(process.execPath, [...entry, "--config", file, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
	let output = "";
	proc.stdout?.on("data", (d: Buffer) => (output += d.toString()));
	proc.stderr?.on("data", (d: Buffer) => (output += d.toString()));
	const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
	const code = await new Promise<number | null>((resolve) => proc.once("exit", (c) => resolve(c)));
	clearTimeout(timer);
	return { code, output };
}
