import { describe, expect, it } from 'vitest';
import { buildInfo, gitRevision, packageVersion } from './build-info.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

describe('gitRevision', () => {
  it.each<[string, Record<string, string>, string | undefined]>([
    ['no git directory', {}, undefined],
    ['a detached HEAD', { HEAD: `${A}\n` }, A],
    ['a branch as a loose ref', { HEAD: 'ref: refs/heads/main\n', 'refs/heads/main': `${A}\n` }, A],
    [
      'a branch in packed-refs',
      { HEAD: 'ref: refs/heads/main\n', 'packed-refs': `# pack-refs with: peeled\n${B} refs/heads/other\n${A} refs/heads/main\n` },
      A,
    ],
    ['the loose ref wins over packed-refs', { HEAD: 'ref: refs/heads/main', 'refs/heads/main': B, 'packed-refs': `${A} refs/heads/main\n` }, B],
    ['a branch with no commit yet', { HEAD: 'ref: refs/heads/main\n' }, undefined],
    ['a ref that leaves the git directory', { HEAD: 'ref: refs/../../etc/passwd', 'refs/../../etc/passwd': A }, undefined],
    ['a HEAD that is neither', { HEAD: 'garbage' }, undefined],
  ])('%s', (_, files, expected) => {
    expect(gitRevision((path) => files[path])).toBe(expected);
  });
});

describe('packageVersion', () => {
  it.each<[string | undefined, string]>([
    ['{"version":"1.2.3"}', '1.2.3'],
    ['{"name":"x"}', 'unknown'],
    ['{"version":""}', 'unknown'],
    ['{"version":7}', 'unknown'],
    ['not json', 'unknown'],
    [undefined, 'unknown'],
  ])('%s -> %s', (text, expected) => {
    expect(packageVersion(text)).toBe(expected);
  });
});

describe('buildInfo', () => {
  it("this package's version, the running Node, and this checkout's commit", () => {
    const info = buildInfo(new URL('../package.json', import.meta.url));
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.node_version).toBe(process.version);
    // The tests run from a checkout (CI clones one): its commit, or unknown for a tree without .git.
    expect(info.revision).toMatch(/^(?:[0-9a-f]{40}|unknown)$/);
  });
});
