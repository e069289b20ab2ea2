// The field table of configs/README.md, generated from the config schema: field, default, valid values and
// meaning, one row per leaf field. `npm run configs:doc` rewrites it; a test fails when the committed one differs.
import * as z from 'zod';
import { trainConfigSchema } from './config.js';

const BEGIN = '<!-- fields: generated from src/train/config.ts by `npm run configs:doc`; do not edit by hand -->';
const END = '<!-- end of fields -->';

/** The JSON Schema keys the table reads (zod writes them, with the `.meta()` keys). */
interface FieldSchema {
  properties?: Record<string, FieldSchema>;
  required?: string[];
  default?: unknown;
  description?: string;
  expected?: string;
  defaultText?: string;
}

/** `readme` with the text between the field-table markers replaced by the table the schema gives. */
export function withFieldTable(readme: string): string {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`configs/README.md: the markers ${BEGIN} and ${END} are missing`);
  return `${readme.slice(0, begin)}${BEGIN}\n\n${fieldTable()}\n${readme.slice(end)}`;
}

export function fieldTable(): string {
  const root = z.toJSONSchema(trainConfigSchema, { io: 'input', unrepresentable: 'any' }) as FieldSchema;
  return markdownTable(['field', 'default', 'values', 'meaning'], fieldRows(root, ''));
}

/** One row per leaf field; a section's own default (e.g. negatives: {strategy: 'none'}) gives its fields'. */
function fieldRows(section: FieldSchema, prefix: string, sectionDefault?: Record<string, unknown>): string[][] {
  return Object.entries(section.properties ?? {}).flatMap(([key, field]) => {
    const path = `${prefix}${key}`;
    const inherited = sectionDefault?.[key];
    if (field.properties)
      return fieldRows(field, `${path}.`, (field.default ?? inherited) as Record<string, unknown> | undefined);
    const value = field.default ?? inherited;
    const defaultText =
      field.defaultText ??
      (value !== undefined ? asCode(value) : section.required?.includes(key) ? 'required' : 'none');
    return [[`\`${path}\``, defaultText, field.expected ?? '', field.description ?? '']];
  });
}

function asCode(value: unknown): string {
  return `\`${typeof value === 'string' ? value : JSON.stringify(value).replaceAll(',', ', ')}\``;
}

/** A Markdown table padded as Prettier pads it, so `prettier --check` and this generator agree. */
function markdownTable(header: string[], rows: string[][]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => cell.replaceAll('|', '\\|')));
  const widths = header.map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  const line = (row: string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  const rule = `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`;
  return [line(cells[0]), rule, ...cells.slice(1).map(line)].join('\n') + '\n';
}
