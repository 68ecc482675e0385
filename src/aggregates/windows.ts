/**
 * Tiles and windows of aggregates. Facts are folded into tiles at three resolutions (a minute, an
 * hour, a day). A window is read as: the facts of its two edges straight from the event log (so
 * the result is exact), and whole tiles in between, coarse ones where whole coarse tiles fit.
 */

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;
export const RESOLUTIONS = [MINUTE, HOUR, DAY] as const;

/** How long tiles of each resolution are kept: fine ones only as far back as windows that use them reach. */
export const TILE_RETENTION: Record<number, number> = { [MINUTE]: 26 * HOUR, [HOUR]: 31 * DAY, [DAY]: 31 * DAY };

/** Windows from 1 minute to 30 days. */
export const MIN_WINDOW = MINUTE;
export const MAX_WINDOW = 30 * DAY;

/** "5m", "1h", "24h", "7d" -> ms, or null. */
export function parseWindow(text: string): number | null {
	const m = /^([1-9]\d{0,5})(m|h|d)$/.exec(text);
	if (!m) return null;
	return Number(m[1]) * (m[2] === "m" ? MINUTE : m[2] === "h" ? HOUR : DAY);
}

/** The start of the tile of `res` holding time `t`. */
export const tileStart = (t: number, res: number): number => Math.floor(t / res) * res;

/** A time range [from, to) of tiles of one resolution. */
export interface TileRange {
	res: number;
	from: number;
	to: number;
}

export interface WindowPlan {
	/** Facts read from the log: [from, to) ranges at the edges. */
	edges: { from: number; to: number }[];
	/** Whole tiles in between. */
	tiles: TileRange[];
}

/**
 * How to read the window (at - length, at]: windows up to a day use minute and hour tiles, longer
 * ones hour and day tiles; the partial fine tiles at both ends come from the log. Tiles the
 * retention may have dropped by `now` (TILE_RETENTION: an as_of days back reads minute tiles kept
 * only 26 hours) are not read either: their span comes from the log too, which holds every fact
 * of the dataset's history.
 */
export function planWindow(length: number, at: number, now = Number.NEGATIVE_INFINITY): WindowPlan {
	const plan = tilePlan(length, at);
	const tiles: TileRange[] = [];
	for (const t of plan.tiles) {
		// The first tile start the retention has certainly kept (it prunes tiles starting before its own now minus the retention).
		const kept = Math.ceil((now - (TILE_RETENTION[t.res] as number)) / t.res) * t.res;
		if (t.from < kept) plan.edges.push({ from: t.from, to: Math.min(t.to, kept) });
		if (t.to > kept) tiles.push({ res: t.res, from: Math.max(t.from, kept), to: t.to });
	}
	return { edges: plan.edges, tiles };
}

function tilePlan(length: number, at: number): WindowPlan {
	const start = at - length; // exclusive
	const [fine, coarse] = length <= DAY ? [MINUTE, HOUR] : [HOUR, DAY];
	// Whole fine tiles strictly after `start` and ending at or before the tile that holds `at`.
	const a = tileStart(start, fine) + fine;
	const b = tileStart(at, fine);
	if (a >= b) return { edges: [{ from: start + 1, to: at + 1 }], tiles: [] };
	const edges = [
		{ from: start + 1, to: a },
		{ from: b, to: at + 1 },
	];
	const ca = Math.ceil(a / coarse) * coarse;
	const cb = tileStart(b, coarse);
	const tiles: TileRange[] =
		ca < cb
			? [
					{ res: fine, from: a, to: ca },
					{ res: coarse, from: ca, to: cb },
					{ res: fine, from: cb, to: b },
				]
			: [{ res: fine, from: a, to: b }];
	return { edges, tiles: tiles.filter((t) => t.from < t.to) };
}
