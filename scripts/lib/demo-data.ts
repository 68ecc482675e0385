// The demo dataset `npm run dev` seeds: a few users with features, a segment list and an embedding.
export const demoSpec = {
	key: "user_id",
	description: "Demo user features",
	ttl_seconds: 86_400,
	fields: {
		age: "int",
		country: "string",
		lifetime_value: "float",
		is_premium: "bool",
		segments: "string[]",
		embedding: { type: "vector", dim: 4 },
	},
};

const users = [
	{ user_id: "u1", age: 34, country: "DE", lifetime_value: 812.5, is_premium: true, segments: ["sports", "travel"], embedding: [0.12, -0.4, 0.33, 0.9] },
	{ user_id: "u2", age: 27, country: "US", lifetime_value: 95.0, is_premium: false, segments: ["gaming"], embedding: [0.8, 0.1, -0.2, 0.05] },
	{ user_id: "u3", age: 45, country: "JP", lifetime_value: 2310.75, is_premium: true, segments: ["finance", "travel"], embedding: [-0.3, 0.6, 0.2, -0.1] },
];

/** Creates the demo dataset (idempotent) and sends its events, then waits until u1 is readable. */
export async function seedDemo(url: string, adminKey: string, log: (m: string) => void): Promise<void> {
	const headers = { authorization: `Bearer ${adminKey}`, "content-type": "application/json" };
	const put = await fetch(`${url}/v1/datasets/demo_users`, { method: "PUT", headers, body: JSON.stringify(demoSpec) });
	if (!put.ok) throw new Error(`seeding the demo dataset failed: ${put.status} ${await put.text()}`);
	const events = users.map((u) => ({ dataset: "demo_users", op: "upsert", value: u }));
	const post = await fetch(`${url}/v1/events`, { method: "POST", headers, body: JSON.stringify(events) });
	if (post.status !== 202) throw new Error(`seeding demo events failed: ${post.status} ${await post.text()}`);
	const end = Date.now() + 20_000;
	while (Date.now() < end) {
		const r = await fetch(`${url}/v1/datasets/demo_users/records/u1`, { headers });
		if (r.ok) {
			log(`seeded dataset demo_users with ${users.length} users`);
			return;
		}
		await new Promise((res) => setTimeout(res, 250));
	}
	log("demo events were accepted but are not readable yet; the queue consumer may still be starting");
}
