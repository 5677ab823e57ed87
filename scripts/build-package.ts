/**
 * `pnpm build` in a package: its `src/` (tests left out) compiled to `dist/` as JavaScript with
 * type declarations, for installs outside this repository (Node does not strip types under
 * node_modules). Inside the repository Node runs `src/*.ts` directly and nothing needs building.
 *
 * The compiler rewrites relative `./x.ts` imports to `./x.js` in JavaScript but leaves them in
 * declarations, so those are rewritten here; files that are not TypeScript (the Lua scripts) are
 * copied beside the code that reads them.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..');
const pkg = process.cwd();
const src = join(pkg, 'src');
const dist = join(pkg, 'dist');
if (!existsSync(src)) throw new Error(`${pkg} has no src/ to build`);

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

function fail(diagnostics: readonly ts.Diagnostic[]): never {
  const host = { getCanonicalFileName: (f: string) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  process.exit(1);
}
