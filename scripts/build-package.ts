/**
 * `pnpm build` in a package: its `src/` (tests left out) compiled to `dist/` as JavaScript with
 * type declarations, for installs outside this repository (Node does not strip types under
 * node_modules). Inside the repository Node runs `src/*.ts` directly and nothing needs building.
 *
 * The compiler rewrites relative `./x.ts` imports to `./x.js` in JavaScript but leaves them in
 * declarations, so those are rewritten here; files that are not TypeScript (the Lua scripts) are
 * copied beside the code that reads them.
 *
 * `--pack` (the package's `prepack`, which `pnpm pack` and `pnpm publish` run first) builds, then
 * puts beside package.json what a registry shows with the package: the repository's LICENSE and,
 * unless the package has a README of its own, one written from its package.json. `--packed`
 * (`postpack`) takes those two away again, so the repository keeps one LICENSE.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..');
const pkg = process.cwd();
const src = join(pkg, 'src');
const dist = join(pkg, 'dist');
if (!existsSync(src)) throw new Error(`${pkg} has no src/ to build`);

/** The first line of a README this script wrote: what `--packed` may remove. */
const WRITTEN = '<!-- Written from package.json by scripts/build-package.ts when packing; not kept in the repository. -->';

if (process.argv.includes('--packed')) {
  rmSync(join(pkg, 'LICENSE'), { force: true });
  const readme = join(pkg, 'README.md');
  if (existsSync(readme) && readFileSync(readme, 'utf8').startsWith(WRITTEN)) rmSync(readme);
  process.exit(0);
}

const sources = (readdirSync(src, { recursive: true }) as string[]).map((f) => join(src, f));
const isCode = (f: string) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts');

const base = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.base.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail([d]) });
if (base === undefined) throw new Error('cannot read tsconfig.base.json');
rmSync(dist, { recursive: true, force: true });
const program = ts.createProgram(sources.filter(isCode), {
  ...base.options,
  noEmit: false,
  declaration: true,
  declarationMap: false,
  sourceMap: false,
  rootDir: src,
  outDir: dist,
});
const emitted = program.emit();
const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
if (diagnostics.length > 0) fail(diagnostics);

for (const file of readdirSync(dist, { recursive: true }) as string[]) {
  if (!file.endsWith('.d.ts')) continue;
  const path = join(dist, file);
  const text = readFileSync(path, 'utf8');
  writeFileSync(path, text.replace(/((?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]*?)\.ts(['"])/g, '$1.js$2'));
}
for (const file of sources) {
  if (file.endsWith('.ts') || !/\.\w+$/.test(file)) continue;
  const target = join(dist, relative(src, file));
  mkdirSync(dirname(target), { recursive: true });
  cpSync(file, target);
}
process.stdout.write(`built ${relative(root, dist)} (${readdirSync(dist, { recursive: true }).length} files)\n`);

if (process.argv.includes('--pack')) {
  copyFileSync(join(root, 'LICENSE'), join(pkg, 'LICENSE'));
  const readme = join(pkg, 'README.md');
  if (!existsSync(readme) || readFileSync(readme, 'utf8').startsWith(WRITTEN))
    writeFileSync(readme, readmeOf(JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as Manifest));
  process.stdout.write(`wrote LICENSE and README.md beside ${relative(root, join(pkg, 'package.json'))} for packing\n`);
}

interface Manifest {
  name: string;
  description?: string;
  license?: string;
  engines?: { node?: string };
  bin?: Record<string, string>;
  repository?: { url?: string; directory?: string };
}

/** The README a registry shows for a package: what it is, how to install it, where the documentation is. */
function readmeOf(manifest: Manifest): string {
  const web = (manifest.repository?.url ?? '').replace(/^git\+/, '').replace(/\.git$/, '');
  const commands = Object.keys(manifest.bin ?? {});
  const install =
    commands.length > 0 ? `npm install --global ${manifest.name}\n${commands.map((c) => `${c} --help`).join('\n')}` : `npm install ${manifest.name}`;
  return [
    WRITTEN,
    `# ${manifest.name}`,
    manifest.description ?? '',
    `Part of [ghl-ingest](${web}#readme): queue-backed, rate-limited, idempotent delivery of conversation history into HighLevel.`,
    '## Install',
    `\`\`\`sh\n${install}\n\`\`\``,
    commands.length > 0 ? `Node ${manifest.engines?.node ?? ''}.` : `Node ${manifest.engines?.node ?? ''}; ES modules only, with type declarations.`,
    '## Documentation',
    `The repository's README: [Installing outside this repository](${web}#installing-outside-this-repository), ` +
      `[Settings](${web}#settings), [Commands](${web}#commands). This package's source: [${manifest.repository?.directory ?? ''}](${web}/tree/main/${manifest.repository?.directory ?? ''}).`,
    '## License',
    `${manifest.license ?? ''}: see LICENSE.`,
    '',
  ].join('\n\n');
}

function fail(diagnostics: readonly ts.Diagnostic[]): never {
  const host = { getCanonicalFileName: (f: string) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  process.exit(1);
}
