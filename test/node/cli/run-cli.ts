/** Runs the `hotpath` CLI as a child process (the project's Node 22, TypeScript stripped), as a user would. */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { repoRoot } from "../dev-server.ts";

export const nodeBin = path.join(repoRoot, "node_modules", ".bin", "node");
export const cliEntry = path.join(repoRoot, "cli", "hotpath.ts");

export interface CliRun {
	code: number | null;
	signal: NodeJS.Signals | null;
	stdout: string;
	stderr: string;
}

/** Children not yet exited: a test that times out must not leave a CLI polling a server that is gone. */
const live = new Set<ChildProcess>();

/** Kills every CLI this process started that is still running (for afterAll). */
export function killLeftovers(): void {
	for (const child of live) child.kill("SIGKILL");
	live.clear();
}

export interface CliOptions {
	input?: string;
	cwd?: string;
	env?: NodeJS.ProcessEnv;
}

/** Starts the CLI and hands back the process (for tests that signal it). */
export function spawnCli(args: string[], opts: CliOptions = {}): ChildProcess & { output: { stdout: string; stderr: string } } {
	const child = spawn(nodeBin, [cliEntry, ...args], {
		cwd: opts.cwd ?? repoRoot,
		env: { ...process.env, HOTPATH_URL: "", HOTPATH_KEY: "", ...opts.env },
		stdio: ["pipe", "pipe", "pipe"],
	}) as ChildProcess & { output: { stdout: string; stderr: string } };
	child.output = { stdout: "", stderr: "" };
	live.add(child);
	child.once("exit", () => live.delete(child));
	child.stdout?.on("data", (d: Buffer) => (child.output.stdout += d.toString()));
	child.stderr?.on("data", (d: Buffer) => (child.output.stderr += d.toString()));
	child.stdin?.end(opts.input ?? "");
	return child;
}

export function exited(child: ReturnType<typeof spawnCli>): Promise<CliRun> {
	return new Promise((resolve) => {
		const done = () => resolve({ code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null, ...child.output });
		if (child.exitCode !== null || child.signalCode !== null) done();
		else child.once("close", done);
	});
}

/** Runs the CLI to the end. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliRun> {
	return exited(spawnCli(args, opts));
}

/** stdout as JSON (for --json runs), with the run in the message when it is not. */
export function json<T = Record<string, unknown>>(run: CliRun): T {
	try {
		return JSON.parse(run.stdout) as T;
	} catch {
		throw new Error(`stdout is not JSON (exit ${run.code}):\n${run.stdout}\nstderr:\n${run.stderr}`);
	}
}
