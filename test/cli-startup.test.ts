// The CLI starts light: `ctl --help` and the parsing of every command's flags load none of the heavy libraries
// (tfjs, onnxruntime, transformers.js, sharp, fastify); each command imports its work when it runs.
// Built binary: `npm run build` first.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const CLI = resolve('dist/cli.js');
const HEAVY = /^(@tensorflow\/|onnxruntime|@huggingface\/|sharp$|fastify$|@fastify\/)/;

/** A module hook that prints, at exit, every package the CLI's own modules import. */
const RECORD_IMPORTS = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const packages = new Set();
port1.on('message', (name) => packages.add(name));
port1.unref();
register('data:text/javascript,' + encodeURIComponent(\`
  let port;
  export function initialize(data) { port = data.port; }
  export async function resolve(specifier, context, next) {
    if (context.parentURL?.includes('/dist/') && !/^(\\\\.|node:)/.test(specifier)) port.postMessage(specifier);
    return next(specifier, context);
  }\`), { data: { port: port2 }, transferList: [port2] });
process.on('exit', () => process.stderr.write('IMPORTS ' + JSON.stringify([...packages].sort()) + '\\n'));
`;

function importsOf(args: string[]): string[] {
  const run = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(RECORD_IMPORTS)}`, CLI, ...args],
    { encoding: 'utf8' },
  );
  const line = run.stderr.split('\n').find((l) => l.startsWith('IMPORTS '));
  if (!line) throw new Error(`no import record: ${run.stderr}`);
  return JSON.parse(line.slice('IMPORTS '.length));
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` first');
});

describe('CLI start-up', () => {
  it('ctl --help imports commander and no heavy library', () => {
    const imports = importsOf(['--help']);
    expect(imports).toContain('commander');
    expect(imports.filter((name) => HEAVY.test(name))).toEqual([]);
  });

  it("a command's bad flag is refused before any heavy library loads", () => {
    for (const command of ['train', 'serve', 'import', 'export', 'eval', 'embed', 'download', 'demo'])
      expect(
        importsOf([command, '--no-such-flag']).filter((name) => HEAVY.test(name)),
        command,
      ).toEqual([]);
  });
});
