// Stands in for a root command whose issue has not landed yet: says so plainly and exits 1.
const [command = 'this command', issue = '?'] = process.argv.slice(2);
process.stderr.write(`ghl-ingest: \`pnpm ${command}\` is not built yet (open issue #${issue}).\n`);
process.exit(1);
