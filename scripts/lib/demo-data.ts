// The demo dataset `npm run dev` seeds: eight users with features, a short bio, a segment list and an
// embedding; a field derived on write (value_tier); searchable (text, filters, vector), and u1 with
// a few versions in its history.
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
		bio: "string",
		embedding: { type: "vector", dim: 4 },
		value_tier: { type: "string", derive: "lifetime_value >= 800 ? 'high' : lifetime_value >= 300 ? 'mid' : 'low'" },
	},
	search: {
		text: ["bio", "segments"],
		filters: ["age", "country", "lifetime_value", "is_premium", "segments", "value_tier"],
		vector: "embedding",
	},
};

export const demoUsers = [
	{
		user_id: "u1",
		age: 34,
		country: "DE",
		lifetime_value: 812.5,
		is_premium: true,
		segments: ["sports", "travel"],
		bio: "Trail runner who plans every holiday around mountain hiking",
		embedding: [0.12, -0.4, 0.33, 0.9],
	},
	{
		user_id: "u2",
		age: 27,
		country: "US",
		lifetime_value: 95.0,
		is_premium: false,
		segments: ["gaming"],
		bio: "Plays strategy games and streams retro consoles at night",
		embedding: [0.8, 0.1, -0.2, 0.05],
	},
	{
		user_id: "u3",
		age: 45,
		country: "JP",
		lifetime_value: 2310.75,
		is_premium: true,
		segments: ["finance", "travel"],
		bio: "Invests in index funds and flies to Europe for food and wine",
		embedding: [-0.3, 0.6, 0.2, -0.1],
	},
	{
		user_id: "u4",
		age: 31,
		country: "FR",
		lifetime_value: 430.0,
		is_premium: false,
		segments: ["travel", "food"],
		bio: "Food blogger crossing Italy by train, one pasta at a time",
		embedding: [0.05, -0.35, 0.4, 0.8],
	},
	{
		user_id: "u5",
		age: 52,
		country: "US",
		lifetime_value: 1675.2,
		is_premium: true,
		segments: ["finance"],
		bio: "Retired banker who reads about markets and walks the dog",
		embedding: [-0.25, 0.7, 0.1, -0.2],
	},
	{
		user_id: "u6",
		age: 23,
		country: "DE",
		lifetime_value: 58.4,
		is_premium: false,
		segments: ["gaming", "sports"],
		bio: "Football fan who plays racing games on weekends",
		embedding: [0.7, 0.2, -0.1, 0.3],
	},
	{
		user_id: "u7",
		age: 39,
		country: "BR",
		lifetime_value: 990.0,
		is_premium: true,
		segments: ["travel", "sports"],
		bio: "Surfer and scuba diver chasing cheap flights to Asia",
		embedding: [0.2, -0.3, 0.25, 0.85],
	},
	{
		user_id: "u8",
		age: 61,
		country: "JP",
		lifetime_value: 310.9,
		is_premium: false,
		segments: ["food"],
		bio: "Cooks ramen at home and collects old cookbooks",
		embedding: [-0.1, 0.3, 0.6, 0.1],
	},
];

const DAY = 86_400_000;

/**
 * The demo's events: one upsert per user, and for u1 an older history (its first state three days
 * ago, a patch one day ago) before its current one. Ids are fixed, so seeding again (every `npm run
 * dev`) applies nothing twice and u1's history stays these three versions.
 */
export function demoEvents(now = Date.now()): { id: string; dataset: string; key: string; op: string; value: Record<string, unknown>; event_time: number }[] {
	const events = [];
	const u1 = demoUsers[0] as (typeof demoUsers)[number];
	events.push({
		id: "demo:u1:1",
		dataset: "demo_users",
		key: "u1",
		op: "upsert",
		value: { ...u1, lifetime_value: 512.0, segments: ["sports"] },
		event_time: now - 3 * DAY,
	});
	events.push({
		id: "demo:u1:2",
		dataset: "demo_users",
		key: "u1",
		op: "patch",
		value: { segments: ["sports", "travel"], lifetime_value: 640.0 },
		event_time: now - DAY,
	});
	for (const u of demoUsers) events.push({ id: `demo:${u.user_id}:now`, dataset: "demo_users", key: u.user_id, op: "upsert", value: u, event_time: now });
	return events;
}

/**
 * Creates the demo dataset (idempotent) and sends its events, then waits until u1 is readable and
 * the search index holds every user.
 */
export async function seedDemo(url: string, adminKey: string, log: (m: string) => void): Promise<void> {
	const headers = { authorization: `Bearer ${adminKey}`, "content-type": "application/json" };
	const put = await fetch(`${url}/v1/datasets/demo_users`, { method: "PUT", headers, body: JSON.stringify(demoSpec) });
	if (!put.ok) throw new Error(`seeding the demo dataset failed: ${put.status} ${await put.text()}`);
	const post = await fetch(`${url}/v1/events`, { method: "POST", headers, body: JSON.stringify(demoEvents()) });
	if (post.status !== 202) throw new Error(`seeding demo events failed: ${post.status} ${await post.text()}`);
	const end = Date.now() + 30_000;
	let readable = false;
	while (Date.now() < end) {
		if (!readable) readable = (await fetch(`${url}/v1/datasets/demo_users/records/u1`, { headers })).ok;
		if (readable) {
			const status = (await (await fetch(`${url}/v1/datasets/demo_users/search`, { headers })).json().catch(() => ({}))) as { status?: string; docs?: number };
			if (status.status === "ready" && (status.docs ?? 0) >= demoUsers.length) {
				log(`seeded dataset demo_users with ${demoUsers.length} users (searchable)`);
				return;
			}
			if (status.status === "failed") {
				log(`seeded dataset demo_users with ${demoUsers.length} users; its search index failed to build: GET /v1/datasets/demo_users/search`);
				return;
			}
		}
		await new Promise((res) => setTimeout(res, 250));
	}
	log(
		readable
			? "demo users are readable, but the search index is still being built (GET /v1/datasets/demo_users/search shows its progress)"
			: "demo events were accepted but are not readable yet; the queue consumer may still be starting",
	);
}
