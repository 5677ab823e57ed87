import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest start first, whatever their project. vitest's own order runs the
 * projects one after another by name (the CLI's, `ghl-ingest`, last) and, on a clean clone with no
 * durations cached, each project's files largest first: the cluster file, alone near 150 s,
 * then started last and ran by itself at the end. Measured 2026-12-04, three files at a time.
 */
const SLOWEST = [
  'apps/cli/test/cluster.test.ts',
  'apps/worker/test/reliability.test.ts',
  'apps/worker/test/reconcile.test.ts',
  'apps/worker/test/delivery.test.ts',
  'apps/worker/test/rate-limit.test.ts',
];

export default class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const i = SLOWEST.findIndex((path) => spec.moduleId.endsWith(`/${path}`));
      return i === -1 ? SLOWEST.length : i;
    };
    return sorted
      .map((spec, i) => ({ spec, i, r: rank(spec) }))
      .sort((a, b) => a.r - b.r || a.i - b.i)
      .map(({ spec }) => spec);
  }
}
