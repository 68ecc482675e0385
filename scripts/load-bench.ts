// `hotpath load` benchmark: generates a 1-million-row NDJSON file and the same rows as Parquet (the read
// benchmark's 23-field records with a 64-float vector, ~1.3 KB of JSON each), loads each into a fresh dataset
// of a running Hotpath through the CLI, and reports rows/s and the CLI's peak RSS.
//
//   npm run dev                                   # in another terminal (or --url/--key for another deployment)
//   npx node scripts/load-bench.ts [--rows 1000000] [--formats ndjson,parquet] [--concurrency 4] [--json FILE]
//
// Files are generated once into .bench/load/ (kept for the next run; --regenerate to rewrite them).
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Hotpath } from "@hotpath/client";
import { fileWriter, parquetWriteRows } from "hyparquet-writer";
import { resolveTarget } from "../cli/context.ts";
import { keyOf, makeValue, SPEC } from "./bench/common.ts";

const root = path.join(import.meta.dirname, "..");
const { values } = parseArgs({
	options: {
		rows: { type: "string", default: "1000000" },
		formats: { type: "string", default: "ndjson,parquet" },
		concurrency: { type: "string" },
		"chunk-rows": { type: "string" },
		dir: { type: "string", default: path.join(root, ".bench", "load") },
		url: { type: "string" },
		key: { type: "string" },
		json: { type: "string" },
		regenerate: { type: "boolean", default: false },
	},
});
const ROWS = Number(values.rows);
if (!Number.isSafeInteger(ROWS) || ROWS < 1) throw new Error("--rows must be a positive integer");
const formats = (values.formats ?? "").split(",").filter(Boolean) as ("ndjson" | "parquet")[];
const log = (m: string) => console.log(`[load-bench] ${m}`);

/** Row i: the entity key and the read benchmark's value for it. */
const rowOf = (i: number): Record<string, unknown> => ({ user_id: keyOf(i), ...makeValue(i) });

async function writeNdjson(file: string): Promise<void> {
	const out = createWriteStream(file);
	for (let i = 0; i < ROWS; i++) {
		if (!out.write(`${JSON.stringify(rowOf(i))}\n`)) await new Promise<void>((r) => out.once("drain", () => r()));
	}
	await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

/** Parquet in row groups of 20,000 rows: lists, json and the vector as JSON columns (hyparquet reads them back as values). */
async function writeParquet(file: string): Promise<void> {
	const ints = Object.entries(SPEC.fields)
		.filter(([, f]) => f === "int")
		.map(([name]) => name);
	function* rows() {
		for (let i = 0; i < ROWS; i++) {
			const row = rowOf(i);
			for (const name of ints) row[name] = BigInt(row[name] as number);
			yield row;
		}
	}
	const typeOf = (t: string) => (t === "string" ? "STRING" : t === "int" ? "INT64" : t === "float" ? "DOUBLE" : t === "bool" ? "BOOLEAN" : "JSON");
	const columns = [
		{ name: "user_id", type: "STRING" as const },
		...Object.entries(SPEC.fields).map(([name, f]) => ({ name, type: typeOf(typeof f === "string" ? f : f.type) as "STRING" })),
	];
	await parquetWriteRows({ writer: fileWriter(file), rows: rows(), columns, rowGroupSize: 20_000 });
}

async function ensureFile(format: "ndjson" | "parquet"): Promise<string> {
	mkdirSync(values.dir as string, { recursive: true });
	const file = path.join(values.dir as string, `rows-${ROWS}.${format}`);
	if (existsSync(file) && !values.regenerate) return file;
	log(`generating ${file}`);
	const t = Date.now();
	if (format === "ndjson") await writeNdjson(`${file}.tmp`);
	else await writeParquet(`${file}.tmp`);
	renameSync(`${file}.tmp`, file);
	log(`  ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - t) / 1000).toFixed(0)} s`);
	return file;
}

interface Run {
	format: string;
	file_mib: number;
	rows: number;
	imported: number;
	rejected: number;
	elapsed_s: number;
	rows_per_s: number;
	peak_rss_mib: number | null;
	exit: number | null;
}

/** Runs `hotpath load` under /usr/bin/time -v (peak RSS from "Maximum resident set size"). */
function loadWithCli(
	dataset: string,
	file: string,
	url: string,
	key: string,
): Promise<{ report: Record<string, number>; peakKb: number | null; code: number | null }> {
	const cli = [path.join(root, "node_modules", ".bin", "node"), path.join(root, "cli", "hotpath.ts")];
	const args = ["--url", url, "--key", key, "load", dataset, file, "--json", "--no-progress"];
	if (values.concurrency) args.push("--concurrency", values.concurrency);
	if (values["chunk-rows"]) args.push("--chunk-rows", values["chunk-rows"]);
	const timed = existsSync("/usr/bin/time");
	const child = timed ? spawn("/usr/bin/time", ["-v", ...cli, ...args]) : spawn(cli[0] as string, [...cli.slice(1), ...args]);
	let stdout = "";
	let stderr = "";
	child.stdout.on("data", (d: Buffer) => (stdout += d));
	child.stderr.on("data", (d: Buffer) => (stderr += d));
	return new Promise((resolve) =>
		child.on("close", (code) => {
			const peak = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
			let report: Record<string, number> = {};
			try {
				report = JSON.parse(stdout);
			} catch {
				log(`load did not answer JSON (exit ${code}):\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
			}
			resolve({ report, peakKb: peak ? Number(peak[1]) : null, code });
		}),
	);
}

async function main(): Promise<void> {
	const { url, key } = resolveTarget({ url: values.url, key: values.key });
	if (!key) throw new Error("no key: pass --key, set HOTPATH_KEY, or run npm run dev (it writes .dev.vars)");
	const hp = new Hotpath({ url, key });
	await hp.health().catch((e: unknown) => {
		throw new Error(`no Hotpath at ${url}: ${(e as Error).message} (start one with npm run dev)`);
	});
	const runs: Run[] = [];
	for (const format of formats) {
		const file = await ensureFile(format);
		const dataset = `load_bench_${format}_${Date.now().toString(36)}`;
		await hp.datasets.apply({ name: dataset, ...SPEC } as Parameters<Hotpath["datasets"]["apply"]>[0]);
		log(`loading ${path.basename(file)} into ${dataset} at ${url}`);
		const { report, peakKb, code } = await loadWithCli(dataset, file, url, key);
		const run: Run = {
			format,
			file_mib: Math.round(statSync(file).size / 2 ** 20),
			rows: report.rows ?? 0,
			imported: report.imported ?? 0,
			rejected: report.rejected ?? 0,
			elapsed_s: Math.round((report.elapsed_ms ?? 0) / 100) / 10,
			rows_per_s: report.rows_per_s ?? 0,
			peak_rss_mib: peakKb === null ? null : Math.round(peakKb / 1024),
			exit: code,
		};
		runs.push(run);
		log(`  ${JSON.stringify(run)}`);
	}
	console.table(runs);
	if (values.json) writeFileSync(values.json, `${JSON.stringify({ at: new Date().toISOString(), url, rows: ROWS, runs }, null, 2)}\n`);
	if (runs.some((r) => r.exit !== 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
	console.error(`[load-bench] ${e instanceof Error ? e.message : String(e)}`);
	process.exit(1);
});
