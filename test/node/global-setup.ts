// Starts one private redis-server for the Node-side test run and hands its URL to the tests via inject('redisUrl').
import type { TestProject } from "vitest/node";
import { startRedisServer } from "../../scripts/lib/redis-server.ts";

declare module "vitest" {
	export interface ProvidedContext {
		redisUrl: string;
	}
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	const redis = await startRedisServer();
	project.provide("redisUrl", redis.url);
	return () => redis.stop();
}
