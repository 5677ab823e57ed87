/**
 * `pnpm bench [part...]`: the benchmarks (not part of `pnpm test`). Parts: delivery, import, rate, scale, contacts.
 * Numbers are medians of alternating rounds, compared side by side within one run.
 */
import { contactsBench } from './contacts.ts';
import { deliveryBench } from './delivery.ts';
import { importBench } from './import.ts';
import { rateBench } from './rate.ts';
import { scaleBench } from './scale.ts';

const PARTS: Record<string, () => Promise<void>> = {
  delivery: deliveryBench,
  import: importBench,
  rate: rateBench,
  scale: scaleBench,
  contacts: contactsBench,
};

const wanted = process.argv.slice(2);
for (const name of wanted.length === 0 ? Object.keys(PARTS) : wanted) {
  const part = PARTS[name];
  if (part === undefined) {
    process.stderr.write(`bench: unknown part "${name}"; parts: ${Object.keys(PARTS).join(', ')}\n`);
    process.exit(1);
  }
  process.stdout.write(`== ${name}\n`);
  await part();
}
