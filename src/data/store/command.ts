// `ctl data verify-embeddings`: check the workdir's embedding stores (dims agree, ids unique, no NaN/Inf).
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { action, withCommon } from '../../util/command.js';
import { InputError, RunError } from '../../util/errors.js';
import { log, printJson } from '../../util/log.js';
import { EMBEDDING_VIEWS, modelSlug, type EmbeddingView } from '../workdir.js';
import { EmbeddingStore } from './embeddings.js';
import { subfolders } from '../../util/fs.js';

interface StoreCheck {
  dir: string;
  model: string;
  view: string;
  ok: boolean;
  count: number;
  dim: number;
  problems: string[];
}

export function registerVerifyEmbeddingsCommand(data: Command): void {
  const cmd = data
    .command('verify-embeddings')
    .description('check embedding stores: dims agree, ids unique, no NaN/Inf (exit 1 when one is bad)')
    .option('--model <id>', 'only the stores of this model id (default: every model in the workdir)')
    .addOption(new Option('--view <view>', 'only this view (default: every view)').choices(EMBEDDING_VIEWS));
  withCommon(cmd).action(
    action<{ model?: string; view?: EmbeddingView }>(async (o) => {
      const root = join(o.workdir, 'embeddings');
      const models = o.model ? [modelSlug(o.model)] : await subfolders(root);
      const dirs: string[] = [];
      for (const model of models) {
        for (const view of await subfolders(join(root, model)))
          if (!o.view || view === o.view) dirs.push(join(root, model, view));
      }
      if (dirs.length === 0)
        throw new InputError(
          `no embedding stores under ${root}${o.model ? ` for model ${o.model}` : ''}${o.view ? ` of view ${o.view}` : ''} (run \`ctl embed\` or \`ctl data synth --dim D\`)`,
        );
      const checks: StoreCheck[] = [];
      for (const dir of dirs) checks.push(await checkStore(dir));
      for (const c of checks) {
        log(`${c.ok ? 'ok ' : 'BAD'} ${c.model} ${c.view}: ${c.count} rows of dim ${c.dim}`);
        for (const p of c.problems.slice(0, 10)) log(`    ${p}`);
        if (c.problems.length > 10) log(`    ... and ${c.problems.length - 10} more`);
      }
      const ok = checks.every((c) => c.ok);
      if (o.json) printJson({ ok, stores: checks });
      if (!ok)
        throw new RunError(`${checks.filter((c) => !c.ok).length} of ${checks.length} embedding stores have problems`);
    }),
  );
}

async function checkStore(dir: string): Promise<StoreCheck> {
  const [model, view] = dir.split(/[\\/]/).slice(-2);
  try {
    const store = await EmbeddingStore.open(dir);
    const result = await store.verify();
    return { dir, model: store.meta.model, view, ...result };
  } catch (err) {
    return { dir, model, view, ok: false, count: 0, dim: 0, problems: [(err as Error).message] };
  }
}
