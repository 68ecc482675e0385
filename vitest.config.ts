import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** Worker tests: run inside workerd with real local D1, KV and Queues (Miniflare). */
export default defineConfig(async () => {
	const migrations = await readD1Migrations("./migrations");
	return {
		plugins: [
			cloudflareTest({
				wrangler: { configPath: "./wrangler.toml" },
				miniflare: {
					bindings: {
						TEST_MIGRATIONS: migrations,
						HOTPATH_ADMIN_KEY: "test-admin-key",
						// Every request checks the registry version, so tests see changes at once.
						CONTROL_CHECK_MS: "0",
					},
				},
			}),
		],
		test: {
			include: ["test/worker/**/*.test.ts"],
			setupFiles: ["./test/worker/apply-migrations.ts"],
			testTimeout: 20_000,
		},
	};
});
