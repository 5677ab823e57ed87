/**
 * Import benchmark (run as `pnpm ingest` runs it, with its heap caps): rows per second of `ingest import` on a generated NDJSON file against bare
 * BullMQ addBulk of the same rows (alternating rounds, medians), the import's peak RSS, and Redis
 * bytes per pending message (a typical SMS of about 300 bytes as JSON).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { followPeakRss } from '@ghl-ingest/testing';
import { fmt, median, ownRedis, ROOT } from './support.ts';

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

async function generate(path: string): Promise<void> {
  const out = createWriteStream(path);
  for (let i = 0; i < ROWS; i += 1) {
    const row = {
      locationId: `loc${i % 3}`,
      type: 'SMS',
      contactId: `contact${(i * 7919) % 100_000}`,
      direction: 'inbound',
      message: `Hi! Your appointment ${i} is confirmed for tomorrow at 10:30. Reply YES to confirm or call us to reschedule.`,
      altId: `sms-${i}`,
      date: 1_714_564_800 + i,
    };
    if (!out.write(`${JSON.stringify(row)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Runs a node script to completion; returns seconds taken and its peak RSS in MB (Linux /proc). */
async function timed(args: string[], env: Record<string, string>): Promise<{ seconds: number; peakMb: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  const memory = followPeakRss(child.pid ?? 0, 100);
  const [code] = (await once(child, 'exit')) as [number | null];
  const peakMb = memory.stop();
  if (code !== 0 && code !== 2) throw new Error(`${args.join(' ')} exited with ${String(code)}`);
  return { seconds: (performance.now() - started) / 1000, peakMb };
}

export async function importBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ghl-bench-import-'));
  const file = join(dir, 'messages.ndjson');
  await generate(file);
  const own = await ownRedis('bench-import');
  const rates: Record<'ours' | 'bare', number[]> = { ours: [], bare: [] };
  let peakMb = 0;
  let bytesPerMessage = 0;
  try {
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const variant of round % 2 === 1 ? (['ours', 'bare'] as const) : (['bare', 'ours'] as const)) {
        await own.flush();
        const base = await own.info('memory', 'used_memory');
        const run =
          variant === 'ours'
            ? await timed(['--max-old-space-size=128', '--max-semi-space-size=16', resolve(ROOT, 'apps/producer/src/main.ts'), 'import', file, '--json'], {
                ...own.env,
                QUEUE_PREFIX: `bi${round}`,
              })
            : await timed([resolve(ROOT, 'bench/bare-import.ts'), file, own.bareTarget, `bb${round}`, 'loc.{bare}'], {});
        rates[variant].push(ROWS / run.seconds);
        if (variant === 'ours') {
          peakMb = Math.max(peakMb, run.peakMb);
          const used = await own.info('memory', 'used_memory');
          bytesPerMessage = (used - base) / ROWS;
        }
        process.stdout.write(
          `  round ${round} ${variant.padEnd(4)} ${fmt(ROWS / run.seconds)} rows/s${variant === 'ours' ? `, peak RSS ${fmt(run.peakMb)} MB` : ''}\n`,
        );
      }
    }
  } finally {
    await own.stop();
  }
  const ours = median(rates.ours);
  const bare = median(rates.bare);
  process.stdout.write(
    `import (${own.label}): ${fmt(ROWS)} rows, ${ROUNDS} rounds, medians: ours ${fmt(ours)} rows/s, bare addBulk ${fmt(bare)} rows/s, ` +
      `ratio ${fmt(ours / bare, 2)} (goal >= 0.80); peak RSS ${fmt(peakMb)} MB (goal <= 200); ` +
      `Redis ${fmt(bytesPerMessage)} bytes per pending message (goal <= 1,500)\n`,
  );
}
