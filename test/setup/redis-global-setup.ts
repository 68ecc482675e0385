/**
 * Worker-test global setup (runs in Node): a private redis-server on a free port, the local
 * Upstash-compatible endpoint in front of it, and a small control server through which tests in
 * workerd can stop and restart that Redis (for the failover test).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";
import { startRedisServer } from "../../scripts/lib/redis-server.ts";
import { spawnUpstashLocal } from "../../scripts/lib/upstash-process.ts";

declare module "vitest" {
	export interface ProvidedContext {
		upstashUrl: string;
		upstashToken: string;
		redisControlUrl: string;
	}
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	const redis = await startRedisServer();
	const token = `test-${Math.random().toString(36).slice(2)}`;
	const upstash = await spawnUpstashLocal({ redisUrl: redis.url, token });
	const control = http.createServer(async (req, res) => {
		try {
			if (req.method === "POST" && req.url === "/redis/stop") await redis.kill();
			else if (req.method === "POST" && req.url === "/redis/start") await redis.restart();
			else {
				res.writeHead(404).end();
				return;
			}
			res.writeHead(204).end();
		} catch (e) {
			res.writeHead(500).end(String(e));
		}
	});
	await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
	project.provide("upstashUrl", upstash.url);
	project.provide("upstashToken", token);
	project.provide("redisControlUrl", `http://127.0.0.1:${(control.address() as AddressInfo).port}`);
	return async () => {
		control.close();
		await upstash.stop();
		await redis.stop();
	};
}
