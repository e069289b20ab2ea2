// Field schemas (zod) for configs read from JSON. Each helper states once what a valid value is; that text is
// the error message ("expected an integer >= 2") and, through the schema's metadata, the docs' "values" column.
// `parseWith` turns zod's issues into `field: expected …, got …` lines.
import * as z from 'zod';

declare module 'zod' {
  interface GlobalMeta {
    /** What a valid value is, e.g. "an integer >= 2". */
    expected?: string;
    /** The default as the docs should say it, where the schema's own default does not (e.g. "file name"). */
    defaultText?: string;
  }
}

export function nonEmptyString() {
  const expected = 'a non-empty string';
  return z
    .string({ error: `expected ${expected}` })
    .min(1, { error: `expected ${expected}` })
    .meta({ expected });
}

export function flag() {
  const expected = 'true or false';
  return z.boolean({ error: `expected ${expected}` }).meta({ expected });
}

export function number(min = -Infinity, max = Infinity) {
  const expected = `a number${rangeText(min, max)}`;
  const error = `expected ${expected}`;
  let schema = z.number({ error });
  if (min > -Infinity) schema = schema.min(min, { error });
  if (max < Infinity) schema = schema.max(max, { error });
  return schema.meta({ expected });
}

export function int(min: number) {
  const expected = `an integer${rangeText(min, Infinity)}`;
  const error = `expected ${expected}`;
  return z.int({ error }).min(min, { error }).meta({ expected });
}

export function oneOf<const T extends readonly string[]>(choices: T) {
  const expected = `one of ${choices.map((c) => `'${c}'`).join(', ')}`;
  return z.enum(choices, { error: `expected ${expected}` }).meta({ expected });
}

/** A value no plain schema states (e.g. an ordered pair), checked by `isValid`. */
export function satisfying<T>(isValid: (value: unknown) => boolean, expected: string) {
  return z.custom<T>(isValid, { error: `expected ${expected}` }).meta({ expected });
}

/** An object with the fields listed (others are left out of the value: files a later version wrote). */
export function object<S extends z.ZodRawShape>(shape: S) {
  return z.object(shape, { error: 'expected an object' });
}

/** An object whose fields are all listed: any other key is an error naming the known ones. */
export function section<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown field (known: ${known})` : 'expected an object'),
  });
}

export interface SchemaIssue {
  /** Dotted path of the field ('' = the whole document). */
  field: string;
  /** "expected …, got …", or "unknown field (known: …)". */
  message: string;
}

/** Parse `raw` with `schema`: the value, or every issue found. */
export function parseWith<S extends z.ZodType>(
  schema: S,
  raw: unknown,
): { value: z.output<S>; issues?: undefined } | { value?: undefined; issues: SchemaIssue[] } {
  const result = schema.safeParse(raw, { reportInput: true });
  if (result.success) return { value: result.data };
  return {
    issues: result.error.issues.flatMap((issue) => {
      const field = issue.path.join('.');
      if (issue.code === 'unrecognized_keys')
        return issue.keys.map((key) => ({ field: field ? `${field}.${key}` : key, message: issue.message }));
      return [{ field, message: `${issue.message}, got ${describeValue(issue.input)}` }];
    }),
  };
}

/** One `source: field: expected …, got …` line per issue. */
export function issueLines(source: string, issues: SchemaIssue[]): string {
  return issues.map((i) => `${source}: ${i.field || '(top level)'}: ${i.message}`).join('\n');
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value); // not null
}

function rangeText(min: number, max: number): string {
  if (min === -Infinity && max === Infinity) return '';
  if (max === Infinity) return ` >= ${min}`;
  if (min === -Infinity) return ` <= ${max}`;
  return ` in [${min}, ${max}]`;
}
