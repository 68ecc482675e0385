import { describe, expect, it } from "vitest";
import { adminKeyOf } from "../../scripts/lib/dev-vars.ts";

describe("the admin key in .dev.vars, as npm run dev reads it", () => {
	it("is read as wrangler reads the file: either quotes, export, comments, the last line for the name", () => {
		expect(adminKeyOf('HOTPATH_ADMIN_KEY="hp_a"\n')).toBe("hp_a");
		// A single-quoted key was taken with its quotes, so the demo seeding and the printed key were wrong.
		expect(adminKeyOf("HOTPATH_ADMIN_KEY='hp_b'\n")).toBe("hp_b");
		expect(adminKeyOf("export HOTPATH_ADMIN_KEY=hp_c # the dev key\n")).toBe("hp_c");
		expect(adminKeyOf("HOTPATH_ADMIN_KEY=hp_old\nREDIS_URL=x\nHOTPATH_ADMIN_KEY=hp_new\n")).toBe("hp_new");
		expect(adminKeyOf("REDIS_URL=x\n")).toBeUndefined();
		expect(adminKeyOf('HOTPATH_ADMIN_KEY=""\n')).toBeUndefined();
	});
});
