// Runs the local Upstash-compatible endpoint as its own Node process, as dev, tests and bench use it.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

export interface UpstashProcess {
	url: string;
	token: string;
	stop(): Promise<void>;
}

const script = path.join(import.meta.dirname, "..", "upstash-local.ts");

/**
 * Starts `scripts/upstash-local.ts` in front of `redisUrl` and resolves once it listens. Without a
 * port it binds one the OS picks and reports it, so no other process can take it in between.
 */
export async function spawnUpstashLocal(opts: { redisUrl: string; token: string; port?: number }): Promise<UpstashProcess> {
	const port = opts.port ?? 0;
	const child: ChildProcess = spawn(process.execPath, [script, `--redis=${opts.redisUrl}`, `--port=${port}`, `--token=${opts.token}`], {
		stdio: ["ignore", "pipe", "inherit"],
	});
	const killOnExit = () => child.kill("SIGKILL");
	process.once("exit", killOnExit);
	const url = await new Promise<string>((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error("upstash-local did not start within 10 s")), 10_000);
		let out = "";
		child.stdout?.on("data", (d: Buffer) => {
			out += d.toString();
			const listening = out.match(/UPSTASH_REDIS_REST_URL=(\S+)/);
			if (listening) {
				clearTimeout(timer);
				resolve(listening[1] as string);
			}
		});
		child.once("exit", (code) => {
			clearTimeout(timer);
			reject(new Error(`upstash-local exited with code ${code} before listening`));
		});
	});
	return {
		url,
		token: opts.token,
		stop: () =>
			new Promise<void>((resolve) => {
				process.off("exit", killOnExit);
				if (child.exitCode !== null) return resolve();
				child.once("exit", () => resolve());
				child.kill("SIGTERM");
			}),
	};
}
