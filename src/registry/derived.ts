/**
 * Derived fields: a field whose value the consumer computes on write from the record's other
 * fields, with a small expression language (`clicks / max(impressions, 1)`, `lower(country)`,
 * `age >= 18 && is_premium`). jsep parses; the type check and the evaluator are ours, so nothing
 * is ever compiled to JavaScript (Workers forbid eval, and an expression must not reach anything
 * but the record).
 *
 * The rules, which the README states:
 * - An expression may use the dataset's other (non-derived) fields, literals, operators and the
 *   functions in FUNCTIONS. Its type is checked when the spec is applied, against the field's.
 * - A missing or null input makes the result null (as in SQL), except under `??`, coalesce(),
 *   concat() (which skips it), `x == null`, and `&&` / `||`, where false && null is false and
 *   true || null is true.
 * - A division by zero, a number out of range or an int past 2^53 gives null, never an error:
 *   the event was acknowledged before the expression ran.
 */
import jsep from "jsep";
import type { RecordState } from "../storage/record-state";
import type { FieldSpec, FieldType } from "./spec";

/** Types an expression can have: a field's, or null for the literal `null`. */
type ExprType = FieldType | "null";
type Value = unknown;
type Evaluate = (value: Record<string, unknown>) => Value;

interface Compiled {
	type: ExprType;
	run: Evaluate;
}

/** The longest expression a spec may hold. */
export const MAX_EXPRESSION_LENGTH = 1000;
/** Field types a derived field may have. */
export const DERIVABLE_TYPES: readonly FieldType[] = ["string", "int", "float", "bool"];

class ExpressionError extends Error {}

const isNumeric = (t: ExprType) => t === "int" || t === "float";
const isList = (t: ExprType) => t === "string[]" || t === "float[]" || t === "vector";
const isNumberList = (t: ExprType) => t === "float[]" || t === "vector";

/** The type two branches (of ?:, ??, coalesce, min, max) share, or an error naming both. */
function unify(a: ExprType, b: ExprType, where: string): ExprType {
	if (a === b) return a;
	if (a === "null") return b;
	if (b === "null") return a;
	if (isNumeric(a) && isNumeric(b)) return "float";
	throw new ExpressionError(`${where}: ${a} and ${b} do not mix`);
}

/** A number as a result: null when not finite (1/0, overflow). */
const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);
/** An int result: null past 2^53, where it would no longer be exact. */
const safeInt = (x: number): number | null => (Number.isSafeInteger(x) ? x : null);
const num = (type: ExprType) => (x: number) => (type === "int" ? safeInt(x) : finite(x));

interface FunctionDef {
	/** Checks the argument types and gives the result's; throws ExpressionError when they do not fit. */
	check(args: ExprType[], name: string): ExprType;
	/** Called only when no argument is null, unless `nullable` says it takes nulls. */
	apply(args: Value[], resultType: ExprType): Value;
	nullable?: boolean;
	/** How it is described in errors and docs. */
	signature: string;
}

const arity = (name: string, args: ExprType[], min: number, max = min) => {
	if (args.length < min || args.length > max)
		throw new ExpressionError(
			`${name}() takes ${min === max ? min : `${min} to ${max === Number.POSITIVE_INFINITY ? "any number of" : max}`} argument(s), got ${args.length}`,
		);
};
const wantNumeric = (name: string, t: ExprType) => {
	if (!isNumeric(t) && t !== "null") throw new ExpressionError(`${name}() needs numbers, got ${t}`);
};

/** A function of one number. */
const math = (fn: (x: number) => number, result: "int" | "float" | "same", signature: string): FunctionDef => ({
	signature,
	check(args, name) {
		arity(name, args, 1);
		wantNumeric(name, args[0] as ExprType);
		return result === "same" ? (args[0] === "null" ? "float" : (args[0] as ExprType)) : result;
	},
	apply: ([x], type) => num(type)(fn(x as number)),
});

const minMax = (pick: (...xs: number[]) => number, signature: string): FunctionDef => ({
	signature,
	check(args, name) {
		arity(name, args, 1, Number.POSITIVE_INFINITY);
		for (const t of args) wantNumeric(name, t);
		return args.reduce((a, b) => unify(a, b, `${name}()`));
	},
	apply: (xs, type) => num(type)(pick(...(xs as number[]))),
});

const text = (fn: (s: string) => Value, result: ExprType, signature: string): FunctionDef => ({
	signature,
	check(args, name) {
		arity(name, args, 1);
		if (args[0] !== "string" && args[0] !== "null") throw new ExpressionError(`${name}() needs a string, got ${args[0]}`);
		return result;
	},
	apply: ([s]) => fn(s as string),
});

const numberList = (fn: (xs: number[]) => number | null, signature: string): FunctionDef => ({
	signature,
	check(args, name) {
		arity(name, args, 1);
		if (!isNumberList(args[0] as ExprType) && args[0] !== "null") throw new ExpressionError(`${name}() needs a float[] or vector field, got ${args[0]}`);
		return "float";
	},
	apply: ([xs]) => {
		const r = fn(xs as number[]);
		return r === null ? null : finite(r);
	},
});

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** The functions an expression may call, by name. */
export const FUNCTIONS: Readonly<Record<string, FunctionDef>> = {
	abs: math(Math.abs, "same", "abs(x)"),
	round: math(Math.round, "int", "round(x): the nearest int, halves up"),
	floor: math(Math.floor, "int", "floor(x)"),
	ceil: math(Math.ceil, "int", "ceil(x)"),
	sqrt: math(Math.sqrt, "float", "sqrt(x): null below 0"),
	ln: math(Math.log, "float", "ln(x): natural log, null at 0 or below"),
	log10: math(Math.log10, "float", "log10(x)"),
	exp: math(Math.exp, "float", "exp(x)"),
	min: minMax(Math.min, "min(x, y, ...)"),
	max: minMax(Math.max, "max(x, y, ...)"),
	clamp: {
		signature: "clamp(x, lo, hi)",
		check(args, name) {
			arity(name, args, 3);
			for (const t of args) wantNumeric(name, t);
			return args.reduce((a, b) => unify(a, b, "clamp()"));
		},
		apply: ([x, lo, hi], type) => num(type)(Math.min(Math.max(x as number, lo as number), hi as number)),
	},
	pow: {
		signature: "pow(x, y), the same as x ** y",
		check(args, name) {
			arity(name, args, 2);
			for (const t of args) wantNumeric(name, t);
			return "float";
		},
		apply: ([x, y]) => finite((x as number) ** (y as number)),
	},
	lower: text((s) => s.toLowerCase(), "string", "lower(s)"),
	upper: text((s) => s.toUpperCase(), "string", "upper(s)"),
	trim: text((s) => s.trim(), "string", "trim(s)"),
	len: {
		signature: "len(s or list): characters of a string, items of a list",
		check(args, name) {
			arity(name, args, 1);
			const t = args[0] as ExprType;
			if (t !== "string" && !isList(t) && t !== "null") throw new ExpressionError(`len() needs a string or a list, got ${t}`);
			return "int";
		},
		// Characters, not UTF-16 units: "é" and "😀" are one each.
		apply: ([x]) => (typeof x === "string" ? [...x].length : (x as unknown[]).length),
	},
	sum: numberList(sum, "sum(list): of a float[] or vector field"),
	mean: numberList((xs) => (xs.length ? sum(xs) / xs.length : null), "mean(list): null for an empty list"),
	norm: numberList((xs) => Math.sqrt(sum(xs.map((x) => x * x))), "norm(list): the Euclidean length"),
	dot: {
		signature: "dot(a, b): of two lists of the same length, else null",
		check(args, name) {
			arity(name, args, 2);
			for (const t of args) if (!isNumberList(t) && t !== "null") throw new ExpressionError(`dot() needs float[] or vector fields, got ${t}`);
			return "float";
		},
		apply: ([a, b]) => {
			const xs = a as number[];
			const ys = b as number[];
			return xs.length === ys.length ? finite(sum(xs.map((x, i) => x * (ys[i] as number)))) : null;
		},
	},
	contains: {
		signature: "contains(s, part) or contains(list, item)",
		check(args, name) {
			arity(name, args, 2);
			const [a, b] = args as [ExprType, ExprType];
			const ok =
				a === "null" || b === "null" || (a === "string" && b === "string") || (a === "string[]" && b === "string") || (isNumberList(a) && isNumeric(b));
			if (!ok) throw new ExpressionError(`contains() takes (string, string) or (list, item), got (${a}, ${b})`);
			return "bool";
		},
		apply: ([a, b]) => (typeof a === "string" ? a.includes(b as string) : (a as unknown[]).includes(b)),
	},
	starts_with: {
		signature: "starts_with(s, prefix)",
		check: (args, name) => twoStrings(args, name),
		apply: ([a, b]) => (a as string).startsWith(b as string),
	},
	ends_with: {
		signature: "ends_with(s, suffix)",
		check: (args, name) => twoStrings(args, name),
		apply: ([a, b]) => (a as string).endsWith(b as string),
	},
	concat: {
		signature: "concat(a, b, ...): as text; a null is skipped",
		nullable: true,
		check(args, name) {
			arity(name, args, 1, Number.POSITIVE_INFINITY);
			for (const t of args) if (isList(t)) throw new ExpressionError(`concat() takes strings, numbers and bools, got ${t}`);
			return "string";
		},
		apply: (xs) => xs.filter((x) => x !== null && x !== undefined).join(""),
	},
	string: {
		signature: "string(x): a number or bool as text",
		check(args, name) {
			arity(name, args, 1);
			if (isList(args[0] as ExprType)) throw new ExpressionError(`string() takes a string, number or bool, got ${args[0]}`);
			return "string";
		},
		apply: ([x]) => String(x),
	},
	coalesce: {
		signature: "coalesce(a, b, ...): the first that is not null",
		nullable: true,
		check(args, name) {
			arity(name, args, 1, Number.POSITIVE_INFINITY);
			return args.reduce((a, b) => unify(a, b, "coalesce()"));
		},
		apply: (xs) => xs.find((x) => x !== null && x !== undefined) ?? null,
	},
};

function twoStrings(args: ExprType[], name: string): ExprType {
	arity(name, args, 2);
	for (const t of args) if (t !== "string" && t !== "null") throw new ExpressionError(`${name}() needs strings, got ${t}`);
	return "bool";
}

/** The first escape jsep would misread in a string literal's source (\u00e9, \x41), or undefined. */
function unknownEscape(raw: string): string | undefined {
	for (let i = 0; i < raw.length; i++) {
		if (raw[i] !== "\\") continue;
		const next = raw[i + 1] ?? "";
		if (!"nrtbfv'\"\\".includes(next)) return `\\${next}`;
		i++;
	}
	return undefined;
}

const isNull = (x: Value) => x === null || x === undefined;

/** Arithmetic: int with int stays int (but / and ** give float); + also joins two strings. */
function binaryArithmetic(op: string, l: Compiled, r: Compiled): Compiled {
	if (op === "+" && (l.type === "string" || r.type === "string")) {
		if ((l.type !== "string" && l.type !== "null") || (r.type !== "string" && r.type !== "null"))
			throw new ExpressionError(`"+" joins two strings, or adds two numbers; got ${l.type} and ${r.type} (concat() joins anything as text)`);
		return strict("string", [l, r], ([a, b]) => (a as string) + (b as string));
	}
	for (const t of [l.type, r.type]) if (!isNumeric(t) && t !== "null") throw new ExpressionError(`"${op}" needs numbers, got ${t}`);
	const type: ExprType = op === "/" || op === "**" || l.type === "float" || r.type === "float" ? "float" : "int";
	const out = num(type);
	const f: Record<string, (a: number, b: number) => number | null> = {
		"+": (a, b) => a + b,
		"-": (a, b) => a - b,
		"*": (a, b) => a * b,
		"/": (a, b) => (b === 0 ? null : a / b),
		"%": (a, b) => (b === 0 ? null : a % b),
		"**": (a, b) => a ** b,
	};
	const g = f[op] as (a: number, b: number) => number | null;
	return strict(type, [l, r], ([a, b]) => {
		const x = g(a as number, b as number);
		return x === null ? null : out(x);
	});
}

function comparison(op: string, l: Compiled, r: Compiled): Compiled {
	const [a, b] = [l.type, r.type];
	const equality = op === "==" || op === "!=" || op === "===" || op === "!==";
	// x == null asks whether x is missing: a bool, never null itself.
	if (equality && (a === "null" || b === "null")) {
		const other = a === "null" ? r : l;
		const negate = op === "!=" || op === "!==";
		return { type: "bool", run: (v) => isNull(other.run(v)) !== negate };
	}
	const same = (isNumeric(a) && isNumeric(b)) || (a === b && (a === "string" || a === "bool"));
	const ordered = !equality;
	if (!same || (ordered && (a === "bool" || b === "bool")))
		throw new ExpressionError(`"${op}" compares two numbers or two strings${ordered ? "" : " or two bools"}; got ${a} and ${b}`);
	const cmp: Record<string, (x: never, y: never) => boolean> = {
		"==": (x, y) => x === y,
		"===": (x, y) => x === y,
		"!=": (x, y) => x !== y,
		"!==": (x, y) => x !== y,
		"<": (x, y) => x < y,
		"<=": (x, y) => x <= y,
		">": (x, y) => x > y,
		">=": (x, y) => x >= y,
	};
	const c = cmp[op] as (x: never, y: never) => boolean;
	return strict("bool", [l, r], ([x, y]) => c(x as never, y as never));
}

/** Null in, null out: `f` runs only when every operand has a value. */
function strict(type: ExprType, parts: Compiled[], f: (xs: Value[]) => Value): Compiled {
	return {
		type,
		run: (v) => {
			const xs = parts.map((p) => p.run(v));
			return xs.some(isNull) ? null : f(xs);
		},
	};
}

function wantBool(what: string, t: ExprType) {
	if (t !== "bool" && t !== "null") throw new ExpressionError(`${what} needs a bool, got ${t}`);
}

function compileNode(node: jsep.Expression, inputs: Record<string, FieldSpec>, derived: ReadonlySet<string>): Compiled {
	switch (node.type) {
		case "Literal": {
			const { value: v, raw } = node as jsep.Literal;
			// jsep reads these words as literals even where a field has the name: say so rather than use the literal.
			if ((raw === "true" || raw === "false" || raw === "null") && Object.hasOwn(inputs, raw))
				throw new ExpressionError(`"${raw}" is a literal in an expression: a field named ${raw} cannot be used in one`);
			if (v === null) return { type: "null", run: () => null };
			if (typeof v === "number") {
				if (!Number.isFinite(v)) throw new ExpressionError(`the number ${(node as jsep.Literal).raw} is too large`);
				const type = Number.isSafeInteger(v) && !/[.eE]/.test(String((node as jsep.Literal).raw)) ? "int" : "float";
				return { type, run: () => v };
			}
			if (typeof v === "string") {
				// jsep knows \n \r \t \b \f \v and quotes, and drops the backslash of any other escape ("\u00e9" became "u00e9").
				const bad = unknownEscape(raw);
				if (bad) throw new ExpressionError(`the escape ${bad} in ${raw} is not supported: write the character itself`);
				return { type: "string", run: () => v };
			}
			if (typeof v === "boolean") return { type: "bool", run: () => v };
			throw new ExpressionError(`the literal ${(node as jsep.Literal).raw} is not supported`);
		}
		case "Identifier": {
			const name = (node as jsep.Identifier).name;
			if (name === "true" || name === "false") return { type: "bool", run: () => name === "true" };
			if (name === "null") return { type: "null", run: () => null };
			if (derived.has(name)) throw new ExpressionError(`"${name}" is a derived field: an expression may use only fields that events set`);
			const field = Object.hasOwn(inputs, name) ? inputs[name] : undefined;
			if (!field) {
				const known = Object.keys(inputs).filter((f) => !derived.has(f));
				throw new ExpressionError(`unknown field "${name}"; the fields events set are ${known.join(", ") || "none"}`);
			}
			if (field.type === "json") throw new ExpressionError(`"${name}" is a json field, which an expression cannot use`);
			return { type: field.type, run: (v) => (Object.hasOwn(v, name) ? (v[name] ?? null) : null) };
		}
		case "UnaryExpression": {
			const { operator, argument } = node as jsep.UnaryExpression;
			const a = compileNode(argument, inputs, derived);
			if (operator === "!") {
				wantBool('"!"', a.type);
				return strict("bool", [a], ([x]) => !x);
			}
			if (operator === "-" || operator === "+") {
				if (!isNumeric(a.type) && a.type !== "null") throw new ExpressionError(`"${operator}" needs a number, got ${a.type}`);
				return strict(a.type === "null" ? "float" : a.type, [a], ([x]) => (operator === "-" ? -(x as number) : (x as number)));
			}
			throw new ExpressionError(`the operator "${operator}" is not supported`);
		}
		case "BinaryExpression": {
			const { operator: op, left, right } = node as jsep.BinaryExpression;
			// jsep reads -x ** 2 as (-x) ** 2, where mathematics (and Python) read -(x ** 2); parentheses
			// leave no trace in its tree, so a sign before ** is refused, as JavaScript refuses it.
			if (op === "**" && left.type === "UnaryExpression") throw new ExpressionError("a sign before ** is ambiguous (-x ** 2): write pow(-x, 2) or -pow(x, 2)");
			const l = compileNode(left, inputs, derived);
			const r = compileNode(right, inputs, derived);
			if (["+", "-", "*", "/", "%", "**"].includes(op)) return binaryArithmetic(op, l, r);
			if (["==", "!=", "===", "!==", "<", "<=", ">", ">="].includes(op)) return comparison(op, l, r);
			if (op === "&&" || op === "||") {
				wantBool(`"${op}"`, l.type);
				wantBool(`"${op}"`, r.type);
				// Kleene logic: a known side that decides the answer wins over a null one.
				const decides = op === "||";
				return {
					type: "bool",
					run: (v) => {
						const a = l.run(v);
						if (a === decides) return decides;
						const b = r.run(v);
						if (b === decides) return decides;
						return isNull(a) || isNull(b) ? null : !decides;
					},
				};
			}
			if (op === "??") {
				const type = unify(l.type, r.type, '"??"');
				return {
					type,
					run: (v) => {
						const a = l.run(v);
						return isNull(a) ? r.run(v) : a;
					},
				};
			}
			throw new ExpressionError(`the operator "${op}" is not supported`);
		}
		case "ConditionalExpression": {
			const { test, consequent, alternate } = node as jsep.ConditionalExpression;
			const t = compileNode(test, inputs, derived);
			wantBool("the condition of ?:", t.type);
			const a = compileNode(consequent, inputs, derived);
			const b = compileNode(alternate, inputs, derived);
			const type = unify(a.type, b.type, "the branches of ?:");
			return {
				type,
				run: (v) => {
					const c = t.run(v);
					return isNull(c) ? null : c ? a.run(v) : b.run(v);
				},
			};
		}
		case "CallExpression": {
			const { callee, arguments: args } = node as jsep.CallExpression;
			const name = callee.type === "Identifier" ? (callee as jsep.Identifier).name : "";
			const fn = Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined;
			if (!fn)
				throw new ExpressionError(
					`${name ? `unknown function "${name}"` : "only named functions can be called"}; the functions are ${Object.keys(FUNCTIONS).join(", ")}`,
				);
			const parts = args.map((a) => compileNode(a, inputs, derived));
			const type = fn.check(
				parts.map((p) => p.type),
				name,
			);
			if (fn.nullable)
				return {
					type,
					run: (v) =>
						fn.apply(
							parts.map((p) => p.run(v) ?? null),
							type,
						),
				};
			return strict(type, parts, (xs) => fn.apply(xs, type));
		}
		case "Compound":
			if (!(node as jsep.Compound).body.length) throw new ExpressionError("the expression is empty");
			throw new ExpressionError("an expression is one expression: no ; or juxtaposed terms");
		case "ThisExpression":
			throw new ExpressionError(
				Object.hasOwn(inputs, "this") ? '"this" is a keyword in an expression: a field named this cannot be used in one' : '"this" is not supported',
			);
		case "MemberExpression":
			throw new ExpressionError("member access (a.b, a[0]) is not supported: use the functions (len, contains, ...)");
		default:
			throw new ExpressionError(`${node.type} is not supported`);
	}
}

/** A type fits a field's: exactly, or an int for a float field, or null. */
const fits = (got: ExprType, want: FieldType) => got === want || got === "null" || (got === "int" && want === "float");

/**
 * Compiles `expression` for a field of type `type`, over the dataset's fields. `derived` names the
 * dataset's derived fields, which an expression may not use. Returns the evaluator, or why the
 * expression is refused.
 */
export function compileDerived(
	expression: string,
	type: FieldType,
	fields: Record<string, FieldSpec>,
	derived: ReadonlySet<string>,
): { run: Evaluate } | { error: string } {
	if (expression.length > MAX_EXPRESSION_LENGTH) return { error: `an expression is at most ${MAX_EXPRESSION_LENGTH} characters` };
	let ast: jsep.Expression;
	try {
		ast = jsep(expression);
	} catch (e) {
		return { error: `cannot parse: ${(e as Error).message}` };
	}
	try {
		const c = compileNode(ast, fields, derived);
		if (!fits(c.type, type)) {
			const hint = c.type === "float" && type === "int" ? " (round(), floor() or ceil() make an int)" : "";
			return { error: `the expression is ${c.type}, the field ${type}${hint}` };
		}
		return { run: c.run };
	} catch (e) {
		if (e instanceof ExpressionError) return { error: e.message };
		// jsep gives odd nodes for odd input (a bare "this", say): refused rather than thrown.
		return { error: `cannot use the expression: ${String((e as Error).message ?? e)}` };
	}
}

/**
 * Whether two expressions are the same but for spacing (and redundant parentheses): a spec applied
 * again with its expression reformatted changes nothing, so it is not an incompatible change.
 */
export function sameExpression(a: string, b: string): boolean {
	if (a === b) return true;
	try {
		return JSON.stringify(jsep(a)) === JSON.stringify(jsep(b));
	} catch {
		return false;
	}
}

/** What a spec needs to derive: its fields, some with `derive`. */
interface DerivingSpec {
	fields: Record<string, FieldSpec>;
}

type Derivers = [name: string, run: Evaluate][];
const compiled = new WeakMap<DerivingSpec, Derivers>();

/** The evaluators of a spec's derived fields, compiled once per spec object. The registry stores only specs that compile. */
function deriversOf(spec: DerivingSpec): Derivers {
	let ds = compiled.get(spec);
	if (ds) return ds;
	const names = derivedFieldNames(spec);
	ds = [];
	for (const name of names) {
		const f = spec.fields[name] as FieldSpec;
		const c = compileDerived(f.derive as string, f.type, spec.fields, names);
		// A stored spec that no longer compiles cannot happen (it was checked on PUT); it derives null rather than failing the batch.
		ds.push([name, "run" in c ? c.run : () => null]);
	}
	compiled.set(spec, ds);
	return ds;
}

export function derivedFieldNames(spec: DerivingSpec): Set<string> {
	return new Set(Object.entries(spec.fields).flatMap(([name, f]) => (f.derive === undefined ? [] : [name])));
}

export const hasDerived = (spec: DerivingSpec) => Object.values(spec.fields).some((f) => f.derive !== undefined);

/**
 * The value with every derived field computed from the others (null when an input is missing).
 * Returns the same object when nothing changes, so callers can tell an unchanged record.
 */
export function withDerived(spec: DerivingSpec, value: Record<string, unknown> | null): Record<string, unknown> | null {
	if (!value) return value;
	const ds = deriversOf(spec);
	if (!ds.length) return value;
	let out: Record<string, unknown> | null = null;
	for (const [name, run] of ds) {
		let x: Value;
		try {
			x = run(value);
		} catch {
			x = null;
		}
		x ??= null;
		// JSON has no -0 (D1 stores it as 0): compared as stored, or every refill would rewrite it.
		if (x === 0) x = 0;
		if (Object.hasOwn(value, name) && Object.is(value[name], x)) continue;
		out ??= { ...value };
		out[name] = x;
	}
	return out ?? value;
}

/**
 * A merged state with its derived fields computed from its value. They depend on the value alone,
 * never on the order events came in, so folding stays convergent: run after every fold that
 * changed the state. Returns the same object when they are already right.
 */
export function withDerivedFields(spec: DerivingSpec | undefined, state: RecordState | null): RecordState | null {
	if (!spec || !state?.value) return state;
	const value = withDerived(spec, state.value);
	return value === state.value ? state : { ...state, value };
}
