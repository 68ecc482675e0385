import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * Worker tests: run inside workerd with real local D1, KV and Queues (Miniflare), and the hot
 * tier on a private redis-server reached through the local Upstash-compatible endpoint.
 */
export default defineConfig(async () => {
	const migrations = await readD1Migrations("./migrations");
	return {
		plugins: [
			cloudflareTest(({ inject }) => ({
				wrangler: { configPath: "./wrangler.toml" },
				miniflare: {
					bindings: {
						TEST_MIGRATIONS: migrations,
						HOTPATH_ADMIN_KEY: "test-admin-key",
						UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
						UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
						REDIS_CONTROL_URL: inject("redisControlUrl"),
						// The local endpoint is a Node process on a shared 2-core machine: allow for its jitter.
						REDIS_TIMEOUT_MS: "1000",
						REDIS_COOLDOWN_MS: "500",
					},
				},
			})),
		],
		test: {
			include: ["test/worker/**/*.test.ts"],
			globalSetup: ["./test/setup/redis-global-setup.ts"],
			setupFiles: ["./test/worker/apply-migrations.ts"],
			testTimeout: 20_000,
			// One file at a time: the Redis failover test stops and restarts the redis-server every file
			// shares, which would fail other files' Redis writes if they ran alongside it.
			fileParallelism: false,
		},
	};
});
