// Shared by the synth tests: temp workdirs and small worlds.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateWorld, type WorldOptions, type SynthWorld } from '../src/data/synth/world.js';

const dirs: string[] = [];

export async function tempWorkdir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ctl-synth-'));
  dirs.push(dir);
  return dir;
}

export async function removeTempWorkdirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

const worlds = new Map<string, SynthWorld>();

/** A world, generated once per option set per test file. */
export function world(options: Partial<WorldOptions> = {}): SynthWorld {
  const full: WorldOptions = { scenes: 1500, products: 1900, seed: 7, domain: 'fashion', ...options };
  const key = JSON.stringify(full);
  if (!worlds.has(key)) worlds.set(key, generateWorld(full));
  return worlds.get(key)!;
}
