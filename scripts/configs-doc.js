// `npm run configs:doc`: rewrite the field table of configs/README.md from the config schema (built in dist/).
import { readFile, writeFile } from 'node:fs/promises';
import { withFieldTable } from '../dist/train/config-doc.js';

const path = new URL('../configs/README.md', import.meta.url);
await writeFile(path, withFieldTable(await readFile(path, 'utf8')));
