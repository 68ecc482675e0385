// What the bridge's Redis Streams tests share: the real Redis on 127.0.0.1:6379, a fake Hotpath that
// has the dataset "users", a scratch directory, and streams of unique names, deleted after the file.
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { type FakeHotpath, startFakeHotpath } from "./fake-hotpath.ts";
import { scratchDir } from "./harness.ts";

export const REDIS_URL = "redis://127.0.0.1:6379";

export interface RedisStreamsFixture {
	/** Set before the file's tests run. */
	redis: Redis;
	fake: FakeHotpath;
	scratch: { dir: string; remove: () => void };
	/** A stream name of its own (`bridge-test:<prefix>...`), deleted after the file's tests. */
	newStream: (prefix?: string) => string;
}

/** Registers the file's beforeAll and afterAll hooks; call it at the top of a test file. */
export function redisStreamsFixture(): RedisStreamsFixture {
	const streams: string[] = [];
	const fx = {
		scratch: scratchDir(),
		newStream: (prefix = "") => {
			const s = `bridge-test:${prefix}${Date.now()}:${Math.random().toString(36).slice(2, 6)}`;
			streams.push(s);
			return s;
		},
	} as RedisStreamsFixture;
	beforeAll(async () => {
		fx.redis = new Redis(REDIS_URL);
		fx.fake = await startFakeHotpath({ datasets: ["users"] });
	});
	afterAll(async () => {
		if (streams.length) await fx.redis.del(...streams);
		fx.redis?.disconnect();
		await fx.fake?.close();
		fx.scratch.remove();
	});
	return fx;
}
